import { sleep } from "../../shared/net.ts";
import { type ServiceFolder, serviceVersion } from "../../web-service/version.ts";
import type { EventBus, TimedStackEvent } from "../events/bus.ts";
import type { LocalRegion } from "../region.ts";

export interface RollRequest {
  /** Instance settings of the new version (on top of the group's own): a change makes a new version. */
  settings: Record<string, string>;
  /** A new instance not healthy this long after it listens fails the roll (default 10 s). */
  instanceHealthyTimeoutMs?: number;
  /** Launch failures or crashes of the new version before the roll is rolled back (default 2). */
  maxFailures?: number;
  /** The whole roll (default 5 min). */
  timeoutMs?: number;
  /** A rebuilt service bundle to roll out (default: the one running). */
  artifact?: string;
  /** The user's service folder, hashed into the version: a code change there is a new version. */
  serviceFolder?: ServiceFolder;
}

export interface RollResult {
  fromVersion: string;
  toVersion: string;
  /** The instances that were in service when the roll began and were replaced. */
  instancesReplaced: string[];
  rolledBack: boolean;
  reason?: string;
  durationSeconds: number;
  /** One entry per region, in the order they were rolled (a stack roll; see rollStack). */
  regions?: RegionRollResult[];
}

export interface RegionRollResult extends Omit<RollResult, "regions"> {
  region: string;
  role: "primary" | "secondary";
  /** `rolled`: its instances were replaced (or rolled back); `version-set`: it had none running, so its next launch runs the new version; `not-rolled`: an earlier region rolled back. */
  outcome: "rolled" | "version-set" | "not-rolled";
}

/** What a stack roll does with each region, decided from what runs there (pure). */
export type RegionRollStep = { region: string; action: "roll" | "set-version" };

/**
 * The order of a stack roll: every region that has running instances is rolled, the primary first,
 * one after the other (a broken version then meets one region's instances, not all); a region with
 * none (a pilot light) only takes the new version, so what it launches on failover is current.
 */
export function planStackRoll(
  regions: { name: string; role: "primary" | "secondary"; runningInstances: number }[],
): RegionRollStep[] {
  return [...regions]
    .sort((a, b) => (a.role === b.role ? 0 : a.role === "primary" ? -1 : 1))
    .map((r) => ({ region: r.name, action: r.runningInstances > 0 ? "roll" : "set-version" }));
}

/**
 * A rolling deploy (EC2 Auto Scaling's instance refresh) of one region's group: the group is told
 * the new version and replaces each healthy instance of another version launch first (the pure rules
 * in instance-group/decide.ts keep minimum healthy at 100 %); this watches the outcome and, when the
 * new version crashes or never turns healthy, deploys the previous version back (the rollback that
 * instance refresh and ECS's deployment circuit breaker do). The old instances serve throughout.
 */
export async function rollRegion(
  region: LocalRegion,
  events: EventBus,
  request: RollRequest,
): Promise<RollResult> {
  const group = region.group;
  const startedAt = Date.now();
  const fromVersion = group.version;
  const fromSettings = { ...group.versionSettings };
  const fromArtifact = group.options.serviceEntry;
  const artifact = request.artifact ?? fromArtifact;
  const toVersion = serviceVersion(
    artifact,
    { ...group.options.instanceEnvironment(), ...request.settings },
    request.serviceFolder,
  );
  const before = group.list().filter((i) => i.state !== "terminating");
  const result = (rolledBack: boolean, replaced: string[], reason?: string): RollResult => ({
    fromVersion,
    toVersion,
    instancesReplaced: replaced,
    rolledBack,
    ...(reason ? { reason } : {}),
    durationSeconds: (Date.now() - startedAt) / 1000,
  });
  if (toVersion === fromVersion) return result(false, [], "already at this version");

  const healthyTimeoutMs = request.instanceHealthyTimeoutMs ?? 10_000;
  const maxFailures = request.maxFailures ?? 2;
  const deadline = startedAt + (request.timeoutMs ?? 300_000);
  let failures = 0;
  let failure: string | undefined;
  const launchedNew = new Map<string, number>(); // new-version instance → when it listened
  const terminated = new Set<string>();
  const onEvent = (e: TimedStackEvent) => {
    if (e.region !== undefined && e.region !== region.name) return;
    if (e.type === "instance.launched" && group.versionOf(e.instanceId) === toVersion) {
      launchedNew.set(e.instanceId, Date.now());
    } else if (e.type === "instance.launch-failed") {
      failures++;
      failure = `a new instance failed to launch: ${e.reason}`;
    } else if (e.type === "instance.terminated") {
      terminated.add(e.instanceId);
      if (!e.expected && launchedNew.has(e.instanceId)) {
        failures++;
        failure = `new instance ${e.instanceId} exited (${e.signal ?? `code ${e.code}`})`;
      }
    }
  };
  const unsubscribe = events.subscribe(onEvent);
  events.publish({ type: "roll.started", fromVersion, toVersion, instances: before.length }, region.name);
  const healthy = (id: string) => region.targetGroup.get(id)?.health === "healthy";
  /** Done when every old instance is gone and `desired` healthy instances of `version` serve. */
  const settled = (version: string) => {
    const live = group.list().filter((i) => i.state !== "terminating");
    return (
      before.every((i) => terminated.has(i.instanceId) || group.versionOf(i.instanceId) === version) &&
      live.filter((i) => group.versionOf(i.instanceId) === version && healthy(i.instanceId)).length >=
        group.capacity.desired &&
      live.every((i) => group.versionOf(i.instanceId) === version)
    );
  };
  try {
    group.serviceEntry = artifact;
    group.deployVersion(toVersion, request.settings);
    while (!settled(toVersion)) {
      const now = Date.now();
      for (const [id, at] of launchedNew) {
        if (!healthy(id) && !terminated.has(id) && now - at > healthyTimeoutMs && !failure) {
          failure = `new instance ${id} not healthy within ${healthyTimeoutMs / 1000} s`;
          failures = maxFailures;
        }
      }
      if (failures >= maxFailures || now > deadline) {
        const reason = failure ?? `not finished within ${(deadline - startedAt) / 1000} s`;
        // Rollback: the previous version back; its instances never stopped serving.
        group.serviceEntry = fromArtifact;
        group.deployVersion(fromVersion, fromSettings);
        events.publish(
          { type: "roll.rolled-back", fromVersion: toVersion, toVersion: fromVersion, reason },
          region.name,
        );
        const rollbackDeadline = Date.now() + 120_000;
        while (!settled(fromVersion) && Date.now() < rollbackDeadline) await sleep(100);
        return result(true, [], reason);
      }
      await sleep(100);
    }
    const replaced = before.map((i) => i.instanceId).filter((id) => terminated.has(id));
    const done = result(false, replaced);
    events.publish(
      {
        type: "roll.completed",
        version: toVersion,
        instancesReplaced: replaced.length,
        durationSeconds: done.durationSeconds,
      },
      region.name,
    );
    return done;
  } finally {
    unsubscribe();
  }
}

/**
 * A rolling deploy of the whole stack: each region with running instances in turn (planStackRoll).
 * A region that rolls back stops the roll: the regions after it are not touched (each region's
 * instance refresh is its own on AWS too; the ones already rolled keep the new version).
 */
export async function rollStack(
  regions: LocalRegion[],
  events: EventBus,
  request: RollRequest,
): Promise<RollResult> {
  const startedAt = Date.now();
  const running = (r: LocalRegion) => r.group.list().filter((i) => i.state !== "terminating").length;
  const plan = planStackRoll(
    regions.map((r) => ({ name: r.name, role: r.options.role, runningInstances: running(r) })),
  );
  const results: RegionRollResult[] = [];
  let stoppedBy: RegionRollResult | undefined;
  for (const step of plan) {
    const region = regions.find((r) => r.name === step.region) as LocalRegion;
    const role = region.options.role;
    if (stoppedBy) {
      results.push({
        region: region.name,
        role,
        outcome: "not-rolled",
        fromVersion: region.group.version,
        toVersion: stoppedBy.toVersion,
        instancesReplaced: [],
        rolledBack: false,
        reason: `${stoppedBy.region} rolled back`,
        durationSeconds: 0,
      });
      continue;
    }
    const result = await rollRegion(region, events, request);
    results.push({
      region: region.name,
      role,
      outcome: step.action === "roll" ? "rolled" : "version-set",
      ...result,
    });
    if (result.rolledBack) stoppedBy = results.at(-1);
  }
  const first = results[0] as RegionRollResult;
  const rolledBack = results.find((r) => r.rolledBack);
  return {
    fromVersion: first.fromVersion,
    toVersion: first.toVersion,
    instancesReplaced: results.flatMap((r) => r.instancesReplaced),
    rolledBack: rolledBack !== undefined,
    ...(rolledBack?.reason
      ? { reason: `${rolledBack.region}: ${rolledBack.reason}` }
      : first.reason && results.every((r) => r.reason === first.reason)
        ? { reason: first.reason }
        : {}),
    durationSeconds: (Date.now() - startedAt) / 1000,
    regions: results,
  };
}
