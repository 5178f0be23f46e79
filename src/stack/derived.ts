import type { FailoverRecord } from "./route53-failover.ts";
import { type RegionFailoverTiming, regionFailoverTiming } from "./region-failover-timing.ts";
import type { ResolvedStack } from "./schema.ts";

/**
 * Every setting derived from the description, computed here once and read by both renderers (the
 * AWS CDK stacks and the local runtime), so the two cannot disagree. Only type imports: the web
 * service's bundle reads the constants below too.
 */

/**
 * The region health check (Route 53's on AWS, the local failover probe): a path that answers 200
 * only if the region can serve a count, its Redis round trip included. The target group's own check
 * (`targetGroup.healthCheck.path`) stays cheap, so a Redis outage does not empty every group at once.
 */
export const REGION_HEALTH_CHECK_PATH = "/health/deep";

/**
 * The User-Agent of the local Route 53 health checks (whatever path they ask: the region rule, or
 * the instances' check while the primary's Redis follows the secondary's), as Route 53's own
 * checkers send "Amazon-Route53-Health-Check-Service (ref …; report http://amzn.to/1vsZADi)".
 */
export const REGION_HEALTH_CHECK_USER_AGENT = "Amazon-Route53-Health-Check-Service (ref stayup-local)";

/** Where Route 53's health-check metrics, so their alarms and the notification topic, live. */
export const ROUTE53_METRICS_REGION = "us-east-1";

/**
 * Sentinels per region's Redis group, locally: one, a regional process placed in no availability
 * zone (ElastiCache's Multi-AZ failover is decided by AWS's regional control plane, which a zone
 * outage does not take down), restarted by the runtime if it exits (its state is in the
 * sentinel.conf it rewrites). One, not three: three cost two processes more per region (about
 * 47 MiB at rest, issue 25 item 12); what made one lose counts was a down-after shorter than
 * Sentinel's reconnect pace, which three suffered too (LOCAL_SENTINEL_TIMING; one passed 30 of 30
 * loaded drills since, docs/redis-failover.md). The AWS rendering has no Sentinel: its replication
 * group's `automaticFailoverEnabled` is that control plane.
 */
export const SENTINELS_PER_REGION = 1;

/** How many Sentinels must agree the primary is down: a majority of SENTINELS_PER_REGION. */
export const SENTINEL_QUORUM = Math.floor(SENTINELS_PER_REGION / 2) + 1;

/**
 * Every named resource carries the stack name and the environment, so dev and prod (or two users)
 * never collide (the seed's fixed IAM names did).
 */
export const resourcePrefix = (stack: ResolvedStack) => `${stack.name}-${stack.environment}`;

export interface DerivedSettings {
  /** The region health check's path (see REGION_HEALTH_CHECK_PATH). */
  regionHealthCheckPath: string;
  /**
   * How long the local failover probe waits for the region's answer: `dns.healthCheck.local.timeoutMs`,
   * or half the interval. Locally only: Route 53's timeouts are fixed (4 s to connect, 2 s to answer).
   */
  regionHealthCheckTimeoutMs: number;
  /** The secondary region's group before a failover: `min` and `desired` at the standby size. */
  secondaryStandby: { min: number; desired: number; max: number };
  /** What a failover sets the secondary group to: the description's capacity, not the primary's live one. */
  failoverCapacity: { min: number; desired: number };
  /** How long a deregistered target may finish its in-flight requests before it is stopped. */
  deregistrationDelay: { seconds: number; ms: number };
  /** A new instance is not judged by its health checks this long after launch (the ASG's grace period). */
  healthCheckGracePeriod: { awsSeconds: number; localMs: number };
  /**
   * The instance health check (the target group's on the load-balanced topology; the single
   * instance's own, with the same path, thresholds and timings, as it has no load balancer).
   */
  instanceHealthCheck: {
    path: string;
    healthyThreshold: number;
    unhealthyThreshold: number;
    aws: { intervalSeconds: number; timeoutSeconds: number };
    local: { intervalMs: number; timeoutMs: number };
  };
  /** A new instance's metrics are not counted this long (and a rolling deploy waits this long per instance). */
  instanceWarmup: { awsSeconds: number; localMs: number };
  /** Locally only: how long a running, unhealthy instance stays unhealthy before it is replaced. */
  replacementDelayMs: number;
  /**
   * The failover record pair for `dns.name`, as Route 53 holds it (each value is the region's role,
   * each health check is named by it): the PRIMARY checked, the SECONDARY only with
   * `dns.healthCheck.checkedRecords: "both"`. The AWS records and the local DNS both follow it.
   */
  failoverRecords: FailoverRecord<"primary" | "secondary">[];
  /** The in-region recovery budget and the region health check's detection (region-failover-timing.ts). */
  regionTiming?: RegionFailoverTiming;
  /** The failover/failback notification topic: its name, region and, for an account, its ARN. */
  notificationTopic: { name: string; region: string; arn: (account: string) => string };
}

/** What the secondary region runs before a failover: 0 (pilot light), a minimum (warm) or all (active). */
export function standbyCapacity(stack: ResolvedStack): number {
  const secondary = stack.regions.secondary;
  if (!secondary) return 0;
  if (secondary.standby.mode === "pilot-light") return 0;
  if (secondary.standby.mode === "warm") return secondary.standby.warmCapacity;
  return stack.web.capacity.desired;
}

export function derive(stack: ResolvedStack): DerivedSettings {
  const standby = standbyCapacity(stack);
  const topicName = `${resourcePrefix(stack)}-failover`;
  const group = stack.instanceGroup;
  return {
    regionHealthCheckPath: REGION_HEALTH_CHECK_PATH,
    regionHealthCheckTimeoutMs: stack.dns
      ? (stack.dns.healthCheck.local.timeoutMs ?? stack.dns.healthCheck.local.intervalMs / 2)
      : 0,
    // A warm standby must not scale in below its size: min and desired both (as on AWS).
    secondaryStandby: { min: standby, desired: standby, max: stack.web.capacity.max },
    failoverCapacity: { min: stack.web.capacity.min, desired: stack.web.capacity.desired },
    deregistrationDelay: {
      seconds: stack.targetGroup.deregistrationDelaySeconds,
      ms: stack.targetGroup.deregistrationDelaySeconds * 1000,
    },
    healthCheckGracePeriod: {
      awsSeconds: group.aws.healthCheckGracePeriodSeconds,
      localMs: group.local.healthCheckGracePeriodMs,
    },
    instanceHealthCheck: {
      path: stack.targetGroup.healthCheck.path,
      healthyThreshold: stack.targetGroup.healthCheck.healthyThreshold,
      unhealthyThreshold: stack.targetGroup.healthCheck.unhealthyThreshold,
      aws: { ...stack.targetGroup.healthCheck.aws },
      local: { ...stack.targetGroup.healthCheck.local },
    },
    instanceWarmup: { awsSeconds: stack.scaling.aws.warmupSeconds, localMs: stack.scaling.local.warmupMs },
    replacementDelayMs: group.local.replacementDelayMs,
    failoverRecords: [
      { failover: "PRIMARY", value: "primary", healthCheck: "primary" },
      {
        failover: "SECONDARY",
        value: "secondary",
        ...(stack.dns?.healthCheck.checkedRecords === "both" ? { healthCheck: "secondary" } : {}),
      },
    ],
    regionTiming: stack.dns
      ? regionFailoverTiming({ dns: stack.dns, targetGroup: stack.targetGroup })
      : undefined,
    notificationTopic: {
      name: topicName,
      region: ROUTE53_METRICS_REGION,
      arn: (account) => `arn:aws:sns:${ROUTE53_METRICS_REGION}:${account}:${topicName}`,
    },
  };
}

/** The path drills send traffic to when neither `--path` nor `webService.trafficPath` names one. */
export const DEFAULT_TRAFFIC_PATH = "/";

/**
 * What drills need to know of the service they send traffic to: whether it is the built-in counter
 * (whose answers carry the count), where to send traffic, and its consistency probe if it has one.
 */
export interface ServiceTraffic {
  service: "counter" | "command";
  trafficPath: string;
  consistencyProbePath?: string;
}

export const serviceTraffic = (stack: Pick<ResolvedStack, "webService">): ServiceTraffic => ({
  service: stack.webService.start ? "command" : "counter",
  trafficPath: stack.webService.trafficPath ?? DEFAULT_TRAFFIC_PATH,
  ...(stack.webService.consistencyProbePath
    ? { consistencyProbePath: stack.webService.consistencyProbePath }
    : {}),
});
