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
  /**
   * Stops the roll with rollback (CodeDeploy's StopDeployment with rollback): once aborted, the
   * roll launches no more of the new version and deploys the version it started from back, in
   * every region it already rolled; the abort's reason (a string) is said as the rollback's.
   */
  signal?: AbortSignal;
}

export interface RollResult {
  fromVersion: string;
  toVersion: string;
  /** The instances that were in service when the roll began and were replaced. */
  instancesReplaced: string[];
  rolledBack: boolean;
  reason?: string;
  durationSeconds: number;
  /** The roll was stopped before its end (see RollRequest.signal): it then always ends rolled back. */
  stopped?: boolean;
  /** One entry per region, in the order they were rolled (a stack roll; see rollStack). */
  regions?: RegionRollResult[];
}

export interface RegionRollResult extends Omit<RollResult, "regions"> {
  region: string;
  role: "primary" | "secondary";
  /** `rolled`: its instances were replaced (or rolled back); `version-set`: it had none running, so its next launch runs the new version; `not-rolled`: an earlier region rolled back. */
  outcome: "rolled" | "version-set" | "not-rolled";
}

/** Why a stopped roll was stopped: the abort's reason when the requester gave one. */
export function stopReason(signal: AbortSignal): string {
  return `stopped: ${typeof signal.reason === "string" ? signal.reason : "its requester asked"}`;
}

/** One instance as a roll sees it: the version it runs, whether it serves, whether it is going. */
export interface RollingInstance {
  version?: string;
  healthy: boolean;
  terminating: boolean;
}

/**
 * Whether a group has rolled onto `version` (pure): every instance it still has runs it, those
 * draining included (an instance of another version still draining is not gone yet), and at least
 * `desired` of them serve. The end of a roll, and of its rollback.
 */
export function rolledOnto(instances: readonly RollingInstance[], version: string, desired: number): boolean {
  return (
    instances.every((i) => i.version === version) &&
    instances.filter((i) => !i.terminating && i.healthy).length >= desired
  );
}

/**
 * The regions a stopped stack roll must roll back besides the one it was rolling when stopped
 * (pure): those it had already rolled or given the new version, so that the stack ends on the
 * version it was found on everywhere. A region not reached, one that rolled back by itself, or one
 * that was already at the new version is left as it is.
 */
export function regionsToRollBack(
  results: readonly Pick<
    RegionRollResult,
    "region" | "outcome" | "rolledBack" | "fromVersion" | "toVersion"
  >[],
): string[] {
  return results
    .filter((r) => r.outcome !== "not-rolled" && !r.rolledBack && r.fromVersion !== r.toVersion)
    .map((r) => r.region);
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
  const settled = (version: string) =>
    before.every((i) => terminated.has(i.instanceId) || group.versionOf(i.instanceId) === version) &&
    rolledOnto(observe(region), version, group.capacity.desired);
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
      const stopped = request.signal?.aborted === true;
      if (failures >= maxFailures || now > deadline || stopped) {
        const reason = stopped
          ? stopReason(request.signal as AbortSignal)
          : (failure ?? `not finished within ${(deadline - startedAt) / 1000} s`);
        // Rollback: the previous version back; its instances never stopped serving.
        await rollBackRegion(
          region,
          events,
          { version: fromVersion, settings: fromSettings, artifact: fromArtifact },
          toVersion,
          reason,
          settled,
        );
        return { ...result(true, [], reason), ...(stopped ? { stopped: true } : {}) };
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

/** What a region ran before a roll: what its rollback deploys again. */
export interface RegionVersion {
  version: string;
  settings: Record<string, string>;
  artifact: string;
}

/**
 * The region's group as rolledOnto sees it: every member, those still launching (not listed yet:
 * one of the new version must not come up after a rollback was called done) and those draining.
 */
function observe(region: LocalRegion): RollingInstance[] {
  return region.group.observe().instances.map((i) => ({
    version: i.version,
    healthy: region.targetGroup.get(i.instanceId)?.health === "healthy",
    terminating: i.lifecycle === "terminating",
  }));
}

/**
 * The one rollback path: the group is told the version it ran before (`to`) and replaces every
 * instance of another version the way it rolls (decide.ts: one that never served goes at once, a
 * healthy one only once its replacement is healthy), so clients see nothing. Waits (2 min at most)
 * until the group has rolled onto it (`settled`, by default every instance on it).
 */
export async function rollBackRegion(
  region: LocalRegion,
  events: EventBus,
  to: RegionVersion,
  from: string,
  reason: string,
  settled: (version: string) => boolean = (version) =>
    rolledOnto(observe(region), version, region.group.capacity.desired),
): Promise<boolean> {
  region.group.serviceEntry = to.artifact;
  region.group.deployVersion(to.version, to.settings);
  events.publish({ type: "roll.rolled-back", fromVersion: from, toVersion: to.version, reason }, region.name);
  const rollbackDeadline = Date.now() + 120_000;
  while (!settled(to.version) && Date.now() < rollbackDeadline) await sleep(100);
  return settled(to.version);
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
  /** Filled with what each region ran before its step: what revertStack deploys back. */
  found = new Map<string, RegionVersion>(),
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
    const stopped = request.signal?.aborted === true;
    if (stoppedBy || stopped) {
      results.push({
        region: region.name,
        role,
        outcome: "not-rolled",
        fromVersion: region.group.version,
        toVersion: stoppedBy?.toVersion ?? results[0]?.toVersion ?? region.group.version,
        instancesReplaced: [],
        rolledBack: false,
        reason: stopped ? stopReason(request.signal as AbortSignal) : `${stoppedBy?.region} rolled back`,
        durationSeconds: 0,
      });
      continue;
    }
    found.set(region.name, {
      version: region.group.version,
      settings: { ...region.group.versionSettings },
      artifact: region.group.options.serviceEntry,
    });
    const result = await rollRegion(region, events, request);
    results.push({
      region: region.name,
      role,
      outcome: step.action === "roll" ? "rolled" : "version-set",
      ...result,
    });
    if (result.rolledBack) stoppedBy = results.at(-1);
  }
  // Stopped: the regions already rolled go back too, so the stack ends as it was found.
  if (request.signal?.aborted)
    await rollRegionsBack(regions, events, found, results, stopReason(request.signal));
  const first = results[0] as RegionRollResult;
  const rolledBack = results.find((r) => r.rolledBack);
  const stopped = request.signal?.aborted === true;
  return {
    fromVersion: first.fromVersion,
    toVersion: first.toVersion,
    instancesReplaced: results.flatMap((r) => r.instancesReplaced),
    rolledBack: rolledBack !== undefined || stopped,
    ...(stopped ? { stopped: true } : {}),
    ...(stopped
      ? { reason: stopReason(request.signal as AbortSignal) }
      : rolledBack?.reason
        ? { reason: `${rolledBack.region}: ${rolledBack.reason}` }
        : first.reason && results.every((r) => r.reason === first.reason)
          ? { reason: first.reason }
          : {}),
    durationSeconds: (Date.now() - startedAt) / 1000,
    regions: results,
  };
}

/**
 * Deploys back, the last first (as a roll reached it last), the version each region in `results`
 * ran before the roll (`found`), where it changed (regionsToRollBack); marks them rolled back.
 */
async function rollRegionsBack(
  regions: LocalRegion[],
  events: EventBus,
  found: ReadonlyMap<string, RegionVersion>,
  results: RegionRollResult[],
  reason: string,
): Promise<void> {
  for (const name of regionsToRollBack(results).reverse()) {
    const r = results.find((x) => x.region === name) as RegionRollResult;
    const region = regions.find((x) => x.name === name) as LocalRegion;
    await rollBackRegion(region, events, found.get(name) as RegionVersion, r.toVersion, reason);
    Object.assign(r, { rolledBack: true, stopped: true, reason, instancesReplaced: [] });
  }
}

/**
 * A completed stack roll stopped after its end (POST /roll/stop naming it, nothing rolled since):
 * every region it changed rolled back to what it ran before (`found`, from rollStack), through
 * the same rollback as a roll stopped halfway. Answers the roll's result as a stopped one.
 */
export async function revertStack(
  regions: LocalRegion[],
  events: EventBus,
  found: ReadonlyMap<string, RegionVersion>,
  rolled: RollResult,
  reason: string,
): Promise<RollResult> {
  const startedAt = Date.now();
  const results = (rolled.regions ?? []).map((r) => ({ ...r }));
  await rollRegionsBack(regions, events, found, results, reason);
  return {
    ...rolled,
    instancesReplaced: [],
    rolledBack: true,
    stopped: true,
    reason,
    durationSeconds: (Date.now() - startedAt) / 1000,
    regions: results,
  };
}
