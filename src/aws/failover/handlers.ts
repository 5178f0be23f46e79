/**
 * The two Lambda functions of seed 002, each triggered by its own CloudWatch alarm on the Route 53
 * health check of the primary region. `failover` starts the secondary group; `failback` returns it
 * to its standby size. (The published code deployed the failover code for both.)
 */
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  DescribeGlobalReplicationGroupsCommand,
  ElastiCacheClient,
  FailoverGlobalReplicationGroupCommand,
} from "@aws-sdk/client-elasticache";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";

/** The event a CloudWatch alarm's Lambda action delivers (only the fields used). */
export interface AlarmEvent {
  source?: string;
  alarmArn?: string;
  time?: string;
  alarmData: {
    alarmName: string;
    state: { value: "ALARM" | "OK" | "INSUFFICIENT_DATA"; reason?: string };
  };
}

export interface HandlerResult {
  action: "failover" | "failback" | "none";
  reason: string;
  group?: string;
  minSize?: number;
  desiredCapacity?: number;
  /** With a cross-region Redis replica: the Global Datastore's member promoted, or why not. */
  redis?: { promoted: boolean; region: string; reason: string };
}

/** The SDK clients the handlers use (tests pass mocks). */
export interface Clients {
  autoScaling?: AutoScalingClient;
  sns?: SNSClient;
  elastiCache?: ElastiCacheClient;
  /** Overrides the wait for the datastore (tests: a sleep that returns at once). */
  promotionWait?: Partial<PromotionWait>;
}

/** The Global Datastore and its two members, from the environment (absent: nothing crosses). */
function globalDatastore(env: NodeJS.ProcessEnv = process.env) {
  const id = env.GLOBAL_REPLICATION_GROUP_ID;
  if (!id) return undefined;
  const need = (name: string) => {
    const value = env[name];
    if (!value) throw new Error(`missing environment variable ${name}`);
    return value;
  };
  return {
    id,
    primary: { region: need("PRIMARY_REGION"), group: need("PRIMARY_REPLICATION_GROUP_ID") },
    secondary: { region: need("SECONDARY_REGION"), group: need("SECONDARY_REPLICATION_GROUP_ID") },
  };
}

/** How long and how often a run waits for the datastore to be ready to promote (tests pass their own sleep). */
export interface PromotionWait {
  /** Within one run; 0: throw at once (Lambda retries). */
  seconds: number;
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** CATCH_UP_WAIT_SECONDS, set on the failback function with a Global Datastore (none: no wait). */
function promotionWait(env: NodeJS.ProcessEnv = process.env): PromotionWait {
  const seconds = Number(env.CATCH_UP_WAIT_SECONDS ?? 0);
  return { seconds: Number.isFinite(seconds) && seconds > 0 ? seconds : 0 };
}

/**
 * Makes `to`'s member the Global Datastore's primary (FailoverGlobalReplicationGroup), read first so
 * a retried invocation finds it done. On failback the primary region's member must be `associated`
 * (replicating, caught up with the writer) before it takes writes again. DNS already answers the
 * primary region by then (its health check passes while its Redis follows: it takes writes once
 * promoted), so the run waits for the catch-up (`wait`, polling the datastore) rather than leave
 * the region read-only until Lambda's next retry; past the wait it throws and Lambda retries.
 */
export async function promoteGlobalDatastoreMember(
  action: "failover" | "failback",
  client: ElastiCacheClient,
  datastore: NonNullable<ReturnType<typeof globalDatastore>>,
  wait: PromotionWait = { seconds: 0 },
): Promise<{ promoted: boolean; region: string; reason: string }> {
  const to = action === "failover" ? datastore.secondary : datastore.primary;
  const deadline = Date.now() + wait.seconds * 1000;
  const sleep = wait.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (;;) {
    const found = await client.send(
      new DescribeGlobalReplicationGroupsCommand({
        GlobalReplicationGroupId: datastore.id,
        ShowMemberInfo: true,
      }),
    );
    const group = found.GlobalReplicationGroups?.find((g) => g.GlobalReplicationGroupId === datastore.id);
    if (!group) throw new Error(`Global Datastore ${datastore.id} was not found`);
    const member = group.Members?.find(
      (m) => m.ReplicationGroupId === to.group && m.ReplicationGroupRegion === to.region,
    );
    if (!member) throw new Error(`${to.group} in ${to.region} is not a member of ${datastore.id}`);
    if (member.Role === "PRIMARY") {
      return { promoted: false, region: to.region, reason: `${to.group} is already the primary` };
    }
    const notYet =
      group.Status !== "available"
        ? `Global Datastore ${datastore.id} is ${group.Status}: promoted once it is available`
        : action === "failback" && member.Status !== "associated"
          ? `${to.group} in ${to.region} is ${member.Status}, not yet caught up: it takes writes once associated`
          : undefined;
    if (notYet === undefined) break;
    if (Date.now() >= deadline) throw new Error(notYet);
    await sleep(wait.pollMs ?? 15_000);
  }
  await client.send(
    new FailoverGlobalReplicationGroupCommand({
      GlobalReplicationGroupId: datastore.id,
      PrimaryRegion: to.region,
      PrimaryReplicationGroupId: to.group,
    }),
  );
  return { promoted: true, region: to.region, reason: `${to.group} in ${to.region} promoted` };
}

interface Settings {
  region: string;
  group: string;
  minSize: number;
  desiredCapacity: number;
  topicArn: string;
  topicRegion: string;
}

function settings(prefix: "ACTIVE" | "STANDBY", env: NodeJS.ProcessEnv = process.env): Settings {
  const need = (name: string) => {
    const value = env[name];
    if (value === undefined || value === "") throw new Error(`missing environment variable ${name}`);
    return value;
  };
  const number = (name: string) => {
    const value = Number(need(name));
    if (!Number.isInteger(value) || value < 0)
      throw new Error(`${name} must be a whole number, got ${env[name]}`);
    return value;
  };
  return {
    region: need("SECONDARY_REGION"),
    group: need("SECONDARY_GROUP_NAME"),
    minSize: number(`${prefix}_MIN_SIZE`),
    desiredCapacity: number(`${prefix}_DESIRED_CAPACITY`),
    topicArn: need("TOPIC_ARN"),
    topicRegion: need("TOPIC_ARN").split(":")[3] ?? need("SECONDARY_REGION"),
  };
}

/** What the group should be set to, from what it is: nothing when it is there already. */
export function plannedSize(
  action: "failover" | "failback",
  observed: { minSize: number; desiredCapacity: number },
  target: { minSize: number; desiredCapacity: number },
): { minSize: number; desiredCapacity: number } | undefined {
  // Failover never shrinks: a group that target tracking (or a person) grew stays as large.
  const planned =
    action === "failover"
      ? {
          minSize: Math.max(observed.minSize, target.minSize),
          desiredCapacity: Math.max(observed.desiredCapacity, target.desiredCapacity),
        }
      : target;
  return planned.minSize === observed.minSize && planned.desiredCapacity === observed.desiredCapacity
    ? undefined
    : planned;
}

async function resize(
  action: "failover" | "failback",
  event: AlarmEvent,
  s: Settings,
  clients: Clients,
): Promise<HandlerResult> {
  // An alarm also invokes its action on other transitions when configured so; act on ALARM only.
  if (event.alarmData.state.value !== "ALARM") {
    return { action: "none", reason: `alarm ${event.alarmData.alarmName} is ${event.alarmData.state.value}` };
  }
  // The secondary's Redis takes writes before its instances are asked to serve them (failover);
  // the primary's, once caught up, before the secondary goes back to standby (failback).
  const datastore = globalDatastore();
  const redis = datastore
    ? await promoteGlobalDatastoreMember(
        action,
        clients.elastiCache ??
          new ElastiCacheClient({
            region: action === "failover" ? datastore.secondary.region : datastore.primary.region,
          }),
        datastore,
        { ...promotionWait(), ...clients.promotionWait },
      )
    : undefined;
  const autoScaling = clients.autoScaling ?? new AutoScalingClient({ region: s.region });
  // Read before writing: a retried or repeated invocation finds the group already resized.
  const found = await autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [s.group] }),
  );
  const group = found.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === s.group);
  if (!group || group.MinSize === undefined || group.DesiredCapacity === undefined) {
    // Fails the invocation: Lambda retries it, then sends it to the on-failure destination.
    throw new Error(`group ${s.group} was not found in ${s.region}`);
  }
  const observed = { minSize: group.MinSize, desiredCapacity: group.DesiredCapacity };
  const planned = plannedSize(action, observed, s);
  if (planned) {
    await autoScaling.send(
      new UpdateAutoScalingGroupCommand({
        AutoScalingGroupName: s.group,
        MinSize: planned.minSize,
        DesiredCapacity: planned.desiredCapacity,
      }),
    );
  }
  const now = planned ?? observed;
  // Published even when nothing changed: a retry after a failed publish must still notify.
  const sns = clients.sns ?? new SNSClient({ region: s.topicRegion });
  await sns.send(
    new PublishCommand({
      TopicArn: s.topicArn,
      Subject: `stayup ${action}: ${s.group} in ${s.region} ${planned ? "→" : "already at"} min ${now.minSize}, desired ${now.desiredCapacity}`,
      Message: JSON.stringify({
        event: action,
        alarm: event.alarmData.alarmName,
        reason: event.alarmData.state.reason,
        group: s.group,
        region: s.region,
        changed: Boolean(planned),
        before: observed,
        minSize: now.minSize,
        desiredCapacity: now.desiredCapacity,
        ...(redis ? { redis } : {}),
      }),
    }),
  );
  return {
    action: planned ? action : "none",
    reason: planned
      ? `alarm ${event.alarmData.alarmName} is ALARM`
      : `${s.group} is already at min ${observed.minSize}, desired ${observed.desiredCapacity}`,
    group: s.group,
    minSize: now.minSize,
    desiredCapacity: now.desiredCapacity,
    ...(redis ? { redis } : {}),
  };
}

/** Primary unhealthy: scale the secondary group to its active size and notify. */
export const failover = async (event: AlarmEvent, clients: Clients = {}): Promise<HandlerResult> =>
  resize("failover", event, settings("ACTIVE"), clients);

/** Primary healthy again: return the secondary group to its standby size and notify. */
export const failback = async (event: AlarmEvent, clients: Clients = {}): Promise<HandlerResult> =>
  resize("failback", event, settings("STANDBY"), clients);

/**
 * The Lambda entry points. Lambda passes its context as the second argument, so these take the
 * event alone and use the real SDK clients.
 */
export const failoverHandler = (event: AlarmEvent): Promise<HandlerResult> => failover(event);
export const failbackHandler = (event: AlarmEvent): Promise<HandlerResult> => failback(event);
