/**
 * When a member of a group (an instance of the instance group, a task of the ECS service) is
 * replaced: one set of rules, pure functions of observed state and the time, shared by the
 * instance group's decide.ts and the ECS service's (../ecs/decide.ts).
 *
 * Failing a health check takes a member out of rotation at once (the target group does that);
 * replacing it is a separate, slower decision, because replacing a member that is only slow costs
 * CPU the group lacks and slows the others further (a death spiral):
 * - a member never healthy is replaced once the grace period is over, and one that was healthy once
 *   after it stayed unhealthy for the replacement delay while another member served;
 * - nothing that is still running is replaced while the whole group is slow (every member's health
 *   checks time out) or while no other member is healthy: that is overload, not a broken member;
 * - a replacement starts first and the replaced member goes only once it is healthy, one
 *   replacement per zone at a time.
 */

export type MemberLifecycle = "launching" | "running" | "terminating";
export type MemberHealth = "initial" | "healthy" | "unhealthy";

export interface ReplaceableMember {
  /** The instance's or task's id (its target id in the target group). */
  id: string;
  az: string;
  /** launching: started, not yet listening; running: listening and registered; terminating: going. */
  lifecycle: MemberLifecycle;
  /** What the target group says (initial until its first verdict). */
  health: MemberHealth;
  /** When it was launched (ms, the controller's clock). */
  launchedAt: number;
  /** Since when it has been unhealthy without a pass in between (undefined unless unhealthy). */
  unhealthySince?: number;
  /** Since when it has been healthy (undefined unless healthy). */
  healthySince?: number;
  /** Whether it was ever healthy: a member never healthy is judged by the grace period. */
  everHealthy: boolean;
  /** The member this one was launched to replace, while that one is still running. */
  replaces?: string;
}

/**
 * The target group's view: every member's health checks are timing out (`slow`), and when the
 * last such slowdown ended. Health flaps at random during one, so "another member is healthy"
 * proves nothing then.
 */
export interface Slowdown {
  slow: boolean;
  endedAt?: number;
}

export interface ReplacementPolicy {
  /** A never-healthy member is replaced once this long after its launch (the grace period). */
  healthCheckGracePeriodMs: number;
  /**
   * A running member that only fails its health check is replaced after it has stayed unhealthy
   * this long (and never while no other member is healthy: group-wide slowness is overload).
   */
  replacementDelayMs: number;
}

/** A member kept although it looks broken, and why (for status and events). */
export interface HeldReplacement {
  id: string;
  reason: string;
}

/** What a member is called in reasons: "instance" (instance group) or "task" (ECS service). */
export type MemberNoun = "instance" | "task";

/** Why `member` should be replaced for its health now, or undefined; `held` gets why a broken one is kept. */
export function healthReplacementReason(
  member: ReplaceableMember,
  members: readonly ReplaceableMember[],
  slowdown: Slowdown | undefined,
  policy: ReplacementPolicy,
  now: number,
  held: HeldReplacement[],
  noun: MemberNoun = "instance",
): string | undefined {
  if (member.lifecycle !== "running") return undefined;
  if (!member.everHealthy) {
    if (member.health === "healthy") return undefined;
    if (now - member.launchedAt < policy.healthCheckGracePeriodMs) return undefined;
    // A member started during a slowdown (a scale-out) gets CPU last: on a busy host its first
    // checks time out like everyone's. Killing it throws away what it spent starting and starts
    // another on the same starved CPU.
    if (slowdown?.slow) {
      held.push({
        id: member.id,
        reason: `not healthy within the grace period, but every ${noun}'s health checks are timing out: slow to start, not broken; not replaced`,
      });
      return undefined;
    }
    return `not healthy within the ${policy.healthCheckGracePeriodMs / 1000} s grace period`;
  }
  if (member.health !== "unhealthy" || member.unhealthySince === undefined) return undefined;
  if (now - member.unhealthySince < policy.replacementDelayMs) return undefined;
  // Under a group-wide slowdown every member's checks time out and its health flaps: whichever
  // passed two checks last looks "healthy" for a moment and the others, unhealthy for seconds, look
  // broken next to it. Replacing them was the chain of replacements (one per zone, ~10 s apart):
  // each replacement costs CPU the group lacks. Slowness of the whole group is overload, so nothing
  // is replaced during it, and the delay counts again only once it is over.
  if (slowdown?.slow) {
    held.push({
      id: member.id,
      reason: `unhealthy, but every ${noun}'s health checks are timing out: overload, not a broken ${noun}; not replaced`,
    });
    return undefined;
  }
  if (slowdown?.endedAt !== undefined && now - slowdown.endedAt < policy.replacementDelayMs) return undefined;
  const othersHealthySince = members
    .filter((m) => m.id !== member.id && m.lifecycle === "running" && m.health === "healthy")
    .map((m) => m.healthySince ?? Number.NEGATIVE_INFINITY);
  if (othersHealthySince.length === 0) {
    held.push({
      id: member.id,
      reason: `unhealthy, but so is every other ${noun}: overload, not a broken ${noun}; not replaced`,
    });
    return undefined;
  }
  // The delay counts only while another member serves: when a group-wide slowdown ends, the
  // first to recover does not condemn the others that are a moment behind it.
  if (now - Math.min(...othersHealthySince) < policy.replacementDelayMs) return undefined;
  return `unhealthy for ${policy.replacementDelayMs / 1000} s or more while others were healthy`;
}

export interface ReplacementPlan<M extends ReplaceableMember> {
  /** Replacements under way: replaced id → its replacement. */
  inFlight: Map<string, M>;
  /** Replaced members whose replacement is now healthy: they go. */
  retire: { id: string; reason: string }[];
  /** Members to replace now (launch first), at most one per zone counting those in flight. */
  replace: { member: M; reason: string }[];
  held: HeldReplacement[];
}

/**
 * The replacements of a group's live (not terminating) members: those in flight, the replaced
 * members that may go, and the new ones, oldest failure first, one per zone at a time.
 * `reasonFirst` is a group's own reason to replace a member (a rolling deploy), checked before
 * the health rules.
 */
export function planReplacements<M extends ReplaceableMember>(
  live: readonly M[],
  context: {
    slowdown?: Slowdown;
    policy: ReplacementPolicy;
    now: number;
    noun?: MemberNoun;
    reasonFirst?: (member: M) => string | undefined;
  },
): ReplacementPlan<M> {
  const held: HeldReplacement[] = [];
  const byId = new Map(live.map((m) => [m.id, m]));
  const inFlight = new Map<string, M>();
  for (const m of live) if (m.replaces && byId.has(m.replaces)) inFlight.set(m.replaces, m);
  const retire: ReplacementPlan<M>["retire"] = [];
  for (const [replacedId, replacement] of inFlight) {
    if (replacement.health === "healthy") {
      retire.push({ id: replacedId, reason: `replaced by ${replacement.id}, now healthy` });
    }
  }
  const zonesReplacing = new Set([...inFlight.keys()].map((id) => byId.get(id)?.az));
  const candidates = live
    .filter((m) => !inFlight.has(m.id))
    .map((member) => ({
      member,
      reason:
        (member.lifecycle === "running" ? context.reasonFirst?.(member) : undefined) ??
        healthReplacementReason(
          member,
          live,
          context.slowdown,
          context.policy,
          context.now,
          held,
          context.noun,
        ),
    }))
    .filter((c): c is { member: M; reason: string } => c.reason !== undefined)
    .sort(
      (a, b) =>
        (a.member.unhealthySince ?? a.member.launchedAt) - (b.member.unhealthySince ?? b.member.launchedAt),
    );
  const replace: ReplacementPlan<M>["replace"] = [];
  for (const c of candidates) {
    if (zonesReplacing.has(c.member.az)) {
      held.push({ id: c.member.id, reason: `waits: a replacement in ${c.member.az} is under way` });
      continue;
    }
    zonesReplacing.add(c.member.az);
    replace.push(c);
  }
  return { inFlight, retire, replace, held };
}
