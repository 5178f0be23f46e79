/**
 * Passive outlier detection on real traffic, after Envoy's: consecutive 5xx answers or per-try
 * timeouts eject a target from the load balancer's rotation for a while, longer on each repeat,
 * and never more than a set share of the group at once. Pure state: the caller passes the time
 * and the current rotation, and publishes the decisions it gets back.
 */

export interface OutlierDetectionSettings {
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectionPercent: number;
}

/** What one try at a target ended as. */
export type TryOutcome = "success" | "5xx" | "timeout";

export interface Ejection {
  instanceId: string;
  reason: string;
  forMs: number;
  /** How many times this target has been ejected recently, this one included. */
  ejections: number;
}

/** How many of a target's latest tries are kept to judge whether it is a fast peer. */
const RECENT_TRIES = 32;

/**
 * A target that only times out while its peers answer in time, but not quickly, is ejected only
 * once it has answered nothing in time for this many slow-peer windows (see `observe`).
 */
const SILENT_WINDOWS_AMONG_SLOW_PEERS = 2;

/**
 * A peer may have had this share of its recent tries time out and still count as answering in
 * time: on a busy machine a healthy target sees an occasional slow answer, and requiring none at
 * all let one such answer keep a stalled target in rotation for the whole fault.
 */
const FAST_PEER_MAX_TIMEOUT_SHARE = 0.1;

interface TargetRecord {
  consecutive5xx: number;
  consecutiveTimeouts: number;
  /** When it last answered within the per-try timeout. */
  lastInTimeAt: number;
  ejectedUntil: number;
  returnedAt: number;
  ejections: number;
  /** Ring of the latest tries: when each ended, whether it timed out, how long it took (ms). */
  recentAt: Float64Array;
  recentTimedOut: Uint8Array;
  recentMs: Float64Array;
  recentNext: number;
}

/** How many of `size` targets may be out at once: at least one when there are two or more, never all. */
export function maxEjected(size: number, maxEjectionPercent: number): number {
  if (maxEjectionPercent <= 0 || size < 2) return 0;
  return Math.min(size - 1, Math.max(1, Math.floor((size * maxEjectionPercent) / 100)));
}

export class OutlierDetector {
  private readonly records = new Map<string, TargetRecord>();

  /**
   * @param slowPeerWindowMs a timeout streak ejects a target only if another target in rotation
   *   answered in time within this window, with few timeouts: when the whole group is slow (an
   *   overload), nothing is an outlier, and ejecting would only pile the load on fewer targets.
   * @param quickAnswerMs and only at once (after `consecutiveFailures` timeouts) if that peer's
   *   answers in the window took at most this long (median): a timeout then stands out from the
   *   group. When the group itself answers near the per-try timeout (a slow dependency, a busy
   *   machine), a timeout is the group's own tail: a target whose process was held up for a moment
   *   would be ejected though it is as slow as the others. Then a target goes only once it has
   *   answered nothing in time for SILENT_WINDOWS_AMONG_SLOW_PEERS windows while a peer did.
   *   Default: every answer in time is quick (the streak alone decides, beside an answering peer).
   */
  constructor(
    readonly settings: OutlierDetectionSettings,
    private readonly slowPeerWindowMs: number,
    private readonly quickAnswerMs = Number.POSITIVE_INFINITY,
  ) {}

  private record(instanceId: string): TargetRecord {
    let r = this.records.get(instanceId);
    if (!r) {
      r = {
        consecutive5xx: 0,
        consecutiveTimeouts: 0,
        lastInTimeAt: Number.NEGATIVE_INFINITY,
        ejectedUntil: 0,
        returnedAt: 0,
        ejections: 0,
        recentAt: new Float64Array(RECENT_TRIES).fill(Number.NEGATIVE_INFINITY),
        recentTimedOut: new Uint8Array(RECENT_TRIES),
        recentMs: new Float64Array(RECENT_TRIES),
        recentNext: 0,
      };
      this.records.set(instanceId, r);
    }
    return r;
  }

  /**
   * Records the outcome of one try (and how long it took, `latencyMs`, when it was answered);
   * returns the ejection it causes, if any.
   */
  observe(
    instanceId: string,
    outcome: TryOutcome,
    now: number,
    rotation: readonly string[],
    latencyMs = 0,
  ): Ejection | undefined {
    const r = this.record(instanceId);
    r.recentAt[r.recentNext] = now;
    r.recentTimedOut[r.recentNext] = outcome === "timeout" ? 1 : 0;
    r.recentMs[r.recentNext] = latencyMs;
    r.recentNext = (r.recentNext + 1) % RECENT_TRIES;
    if (outcome === "success") {
      r.lastInTimeAt = now;
      r.consecutive5xx = 0;
      r.consecutiveTimeouts = 0;
      return undefined;
    }
    if (outcome === "5xx") r.consecutive5xx++;
    else r.consecutiveTimeouts++;
    if (r.ejectedUntil > now) return undefined; // already out (answers still arriving from before)
    const threshold = this.settings.consecutiveFailures;
    let reason: string | undefined;
    if (r.consecutive5xx >= threshold) reason = `${r.consecutive5xx} consecutive 5xx answers`;
    else if (r.consecutiveTimeouts >= threshold) {
      const peerMedianMs = this.answeringPeerMedianMs(instanceId, now, rotation);
      if (peerMedianMs === undefined) return undefined;
      if (peerMedianMs <= this.quickAnswerMs) {
        reason = `${r.consecutiveTimeouts} consecutive timeouts while other targets answered in time`;
      } else {
        const silentMs = now - r.lastInTimeAt;
        if (silentMs < SILENT_WINDOWS_AMONG_SLOW_PEERS * this.slowPeerWindowMs) return undefined;
        reason = `${r.consecutiveTimeouts} consecutive timeouts and no answer in time for ${Number.isFinite(silentMs) ? `${(silentMs / 1000).toFixed(1)} s` : "its whole time in rotation"} while other targets answered in time`;
      }
    }
    if (!reason) return undefined;
    const ejectedNow = rotation.filter((id) => id !== instanceId && this.isEjected(id, now)).length;
    if (ejectedNow >= maxEjected(rotation.length, this.settings.maxEjectionPercent)) return undefined;
    // Each base period spent back in rotation without an ejection forgives one earlier ejection.
    const forgiven = r.returnedAt > 0 ? Math.floor((now - r.returnedAt) / this.settings.baseEjectionMs) : 0;
    r.ejections = Math.max(0, r.ejections - forgiven) + 1;
    const forMs = Math.min(this.settings.baseEjectionMs * r.ejections, this.settings.maxEjectionMs);
    r.ejectedUntil = now + forMs;
    r.consecutive5xx = 0;
    r.consecutiveTimeouts = 0;
    return { instanceId, reason, forMs, ejections: r.ejections };
  }

  /**
   * Whether another target in rotation answered in time within the slow-peer window and had at most
   * a small share of its tries in that window time out: only then is a slow target an outlier, and
   * only then is a slow try worth abandoning for another target. It takes an answer in time, not
   * just few timeouts: a target back from an ejection has had no timeout only because it had no
   * traffic, and counting it as fast made a group-wide overload ping-pong (A ejected, B takes the
   * whole load and piles up timeouts, A returns "fast", B is ejected at once, A takes the whole
   * load, ...).
   */
  hasFastPeer(instanceId: string, now: number, rotation: readonly string[]): boolean {
    return this.answeringPeerMedianMs(instanceId, now, rotation) !== undefined;
  }

  /**
   * Among the peers `hasFastPeer` counts, the quickest one's median answer time (ms) over its
   * answers in time within the window; undefined when there is no such peer.
   */
  private answeringPeerMedianMs(instanceId: string, now: number, rotation: readonly string[]) {
    let best: number | undefined;
    const answered: number[] = [];
    for (const id of rotation) {
      if (id === instanceId || this.isEjected(id, now)) continue;
      const r = this.records.get(id);
      if (r === undefined || now - r.lastInTimeAt >= this.slowPeerWindowMs) continue;
      let tries = 0;
      let timeouts = 0;
      answered.length = 0;
      for (let i = 0; i < RECENT_TRIES; i++) {
        if (now - (r.recentAt[i] ?? Number.NEGATIVE_INFINITY) >= this.slowPeerWindowMs) continue;
        tries++;
        if (r.recentTimedOut[i]) timeouts++;
        else answered.push(r.recentMs[i] ?? 0);
      }
      if (timeouts > FAST_PEER_MAX_TIMEOUT_SHARE * tries || answered.length === 0) continue;
      answered.sort((a, b) => a - b);
      const median = answered[Math.floor((answered.length - 1) / 2)] ?? 0;
      best = best === undefined ? median : Math.min(best, median);
    }
    return best;
  }

  /** Takes an ejection decided elsewhere (another balancer process) until `until`. */
  eject(instanceId: string, until: number): void {
    const r = this.record(instanceId);
    r.ejectedUntil = Math.max(r.ejectedUntil, until);
  }

  isEjected(instanceId: string, now: number): boolean {
    const r = this.records.get(instanceId);
    return r !== undefined && r.ejectedUntil > now;
  }

  /**
   * Targets whose ejection ran out since the last call: they are back in rotation. Each is
   * reported once.
   */
  returned(now: number): string[] {
    const back: string[] = [];
    for (const [id, r] of this.records) {
      if (r.ejectedUntil > 0 && r.ejectedUntil <= now) {
        r.ejectedUntil = 0;
        r.returnedAt = now;
        back.push(id);
      }
    }
    return back;
  }

  /** Next moment an ejection runs out, if any is running. */
  nextReturn(): number | undefined {
    let next: number | undefined;
    for (const r of this.records.values())
      if (r.ejectedUntil > 0) next = Math.min(next ?? r.ejectedUntil, r.ejectedUntil);
    return next;
  }

  forget(instanceId: string): void {
    this.records.delete(instanceId);
  }
}
