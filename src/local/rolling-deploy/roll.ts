import { sleep } from "../../shared/net.ts";
import { serviceVersion } from "../../web-service/version.ts";
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
}

export interface RollResult {
  fromVersion: string;
  toVersion: string;
  /** The instances that were in service when the roll began and were replaced. */
  instancesReplaced: string[];
  rolledBack: boolean;
  reason?: string;
  durationSeconds: number;
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
  const toVersion = serviceVersion(artifact, {
    ...group.options.instanceEnvironment(),
    ...request.settings,
  });
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
