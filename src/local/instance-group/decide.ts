/**
 * The instance group's decisions as a pure function of desired and observed state and the time:
 * what to launch, in which zone, and what to terminate. The controller observes (launcher,
 * target group), calls `decide`, and acts through the launcher seam; nothing here touches a process
 * or a clock, so every rule is unit-tested with plain data.
 */

import {
  type MemberHealth,
  type MemberLifecycle,
  planReplacements,
  type ReplacementPolicy,
  type Slowdown,
} from "./replacement.ts";

export type ObservedLifecycle = MemberLifecycle;
export type ObservedHealth = MemberHealth;

export interface ObservedInstance {
  instanceId: string;
  az: string;
  /** launching: started, not yet listening; running: listening and registered; terminating: going. */
  lifecycle: ObservedLifecycle;
  /** What the target group says (initial until its first verdict). */
  health: ObservedHealth;
  /** When it was launched (ms, the controller's clock). */
  launchedAt: number;
  /** Since when it has been unhealthy without a pass in between (undefined unless unhealthy). */
  unhealthySince?: number;
  /** Since when it has been healthy (undefined unless healthy). */
  healthySince?: number;
  /** Whether it was ever healthy: an instance never healthy is judged by the grace period. */
  everHealthy: boolean;
  /** The instance this one was launched to replace, while that one is still running. */
  replaces?: string;
  /** The service version it runs (a rolling deploy replaces those of another version). */
  version?: string;
}

export interface GroupState {
  desired: number;
  availabilityZones: readonly string[];
  /** Zones taken out of service (an AZ outage): nothing launches there. */
  impairedZones: readonly string[];
  instances: readonly ObservedInstance[];
  /** Launches in a row that failed or died within moments of starting (a crash loop), and the last. */
  launchFailures: { consecutive: number; lastAt?: number };
  /** The version instances should run; instances of another version are rolled (rolling deploy). */
  version?: string;
  /**
   * The target group's view: every instance's health checks are timing out (`slow`), and when the
   * last such slowdown ended. Health flaps at random during one, so "another instance is healthy"
   * proves nothing then.
   */
  slowdown?: Slowdown;
}

/** The replacement rules' grace period and delay (replacement.ts), and the crash-loop back-off. */
export interface GroupPolicy extends ReplacementPolicy {
  /** Failed launches in a row tolerated before backing off. */
  crashLoopFreeRetries: number;
  crashLoopBaseDelayMs: number;
  crashLoopMaxDelayMs: number;
}

export const defaultGroupPolicy: GroupPolicy = {
  healthCheckGracePeriodMs: 15_000,
  replacementDelayMs: 5_000,
  crashLoopFreeRetries: 2,
  crashLoopBaseDelayMs: 250,
  crashLoopMaxDelayMs: 10_000,
};

export interface LaunchDecision {
  az: string;
  /** The running instance this launch replaces (it is terminated once this one is healthy). */
  replaces?: string;
  reason: string;
}

export interface TerminateDecision {
  instanceId: string;
  reason: string;
}

export interface GroupDecision {
  launch: LaunchDecision[];
  terminate: TerminateDecision[];
  /** Launches held back by the crash-loop back-off until this time; decide again then. */
  launchBlockedUntil?: number;
  /** Why instances that look broken are not replaced (for status and events), by instance. */
  held: { instanceId: string; reason: string }[];
}

/** When the back-off lets the next launch go (undefined: launch now). */
export function launchBlockedUntil(state: GroupState, policy: GroupPolicy): number | undefined {
  const { consecutive, lastAt } = state.launchFailures;
  if (consecutive <= policy.crashLoopFreeRetries || lastAt === undefined) return undefined;
  const delay = Math.min(
    policy.crashLoopBaseDelayMs * 2 ** (consecutive - policy.crashLoopFreeRetries - 1),
    policy.crashLoopMaxDelayMs,
  );
  return lastAt + delay;
}

const isOutdated = (instance: ObservedInstance, state: GroupState): boolean =>
  state.version !== undefined && instance.version !== undefined && instance.version !== state.version;

/**
 * The group's next step:
 * - keep `desired` instances that are not being replaced, launching each in the zone with the
 *   fewest (configured order on ties), never in an impaired zone;
 * - replace an instance that was never healthy within the grace period, or that stayed unhealthy
 *   for the replacement delay while others are healthy: launch first, terminate it once its
 *   replacement is healthy (the last instance keeps serving meanwhile), one replacement per zone at
 *   a time;
 * - a dead instance is simply gone from `instances`: its replacement is an ordinary launch, at once;
 * - scale in from the most crowded zone, oldest first;
 * - after repeated failed launches, back off exponentially.
 */
export function decide(state: GroupState, policy: GroupPolicy, now: number): GroupDecision {
  const terminate: TerminateDecision[] = [];
  const launch: LaunchDecision[] = [];
  // A version rolled back: its instances that never served go at once (whatever they replace stays).
  for (const i of state.instances) {
    if (i.lifecycle !== "terminating" && isOutdated(i, state) && !i.everHealthy) {
      terminate.push({ instanceId: i.instanceId, reason: `version ${i.version} rolled back, never healthy` });
    }
  }
  const goneNow = new Set(terminate.map((t) => t.instanceId));
  const live = state.instances.filter((i) => i.lifecycle !== "terminating" && !goneNow.has(i.instanceId));
  // The replacement rules (replacement.ts, shared with the ECS service): a rolling deploy's first.
  const plan = planReplacements(
    live.map((i) => ({ ...i, id: i.instanceId })),
    {
      slowdown: state.slowdown,
      policy,
      now,
      noun: "instance",
      // Rolling deploy (instance refresh): a healthy instance of another version is replaced, launch
      // first, so the group never has fewer healthy instances than desired (minimum healthy 100 %).
      reasonFirst: (i) =>
        isOutdated(i, state) && i.health === "healthy"
          ? `rolling deploy: version ${i.version} → ${state.version}`
          : undefined,
    },
  );
  const held: GroupDecision["held"] = plan.held.map((h) => ({ instanceId: h.id, reason: h.reason }));
  const replacing = plan.inFlight;
  for (const { id, reason } of plan.retire) terminate.push({ instanceId: id, reason });
  const toReplace = plan.replace.map(({ member, reason }) => ({ instance: member, reason }));

  // Capacity: every live instance counts except those being replaced (their replacement counts).
  const leaving = new Set([...replacing.keys(), ...toReplace.map((c) => c.instance.instanceId)]);
  const counted = live.filter((i) => !leaving.has(i.instanceId));
  const zoneCounts = new Map<string, number>();
  for (const az of state.availabilityZones) if (!state.impairedZones.includes(az)) zoneCounts.set(az, 0);
  for (const i of counted) if (zoneCounts.has(i.az)) zoneCounts.set(i.az, (zoneCounts.get(i.az) ?? 0) + 1);
  const pickZone = (): string | undefined => {
    let best: string | undefined;
    let bestCount = Number.POSITIVE_INFINITY;
    for (const [az, count] of zoneCounts) {
      if (count < bestCount) {
        best = az;
        bestCount = count;
      }
    }
    if (best !== undefined) zoneCounts.set(best, bestCount + 1);
    return best;
  };

  const blockedUntil = launchBlockedUntil(state, policy);
  const mayLaunch = blockedUntil === undefined || now >= blockedUntil;
  let count = counted.length;
  if (mayLaunch) {
    for (const { instance, reason } of toReplace) {
      if (count >= state.desired) break;
      const az = pickZone();
      if (az === undefined) break;
      launch.push({
        az,
        replaces: instance.instanceId,
        reason: `replacing ${instance.instanceId}: ${reason}`,
      });
      count++;
    }
    while (count < state.desired) {
      const az = pickZone();
      if (az === undefined) break;
      launch.push({ az, reason: `capacity ${count} below desired ${state.desired}` });
      count++;
    }
  }
  // Replacements not launched because the group is above desired simply go.
  for (const { instance, reason } of toReplace) {
    if (
      !launch.some((l) => l.replaces === instance.instanceId) &&
      count >= state.desired &&
      counted.length >= state.desired
    )
      terminate.push({ instanceId: instance.instanceId, reason });
  }

  if (counted.length > state.desired) {
    const crowd = new Map<string, number>();
    for (const i of counted) crowd.set(i.az, (crowd.get(i.az) ?? 0) + 1);
    const victims = [...counted].sort(
      (a, b) => (crowd.get(b.az) ?? 0) - (crowd.get(a.az) ?? 0) || a.launchedAt - b.launchedAt,
    );
    for (let n = counted.length; n > state.desired; n--) {
      const victim = victims.shift();
      if (!victim) break;
      crowd.set(victim.az, (crowd.get(victim.az) ?? 0) - 1);
      // Re-sort after each pick so a second victim comes from the zone that is now most crowded.
      victims.sort((a, b) => (crowd.get(b.az) ?? 0) - (crowd.get(a.az) ?? 0) || a.launchedAt - b.launchedAt);
      terminate.push({ instanceId: victim.instanceId, reason: "scale in" });
    }
  }

  return {
    launch,
    terminate,
    held,
    ...(mayLaunch || blockedUntil === undefined ? {} : { launchBlockedUntil: blockedUntil }),
  };
}
