/**
 * Where a request goes: the target in rotation with the fewest requests in flight (the ALB's least
 * outstanding requests), round robin among equals. Plain round robin kept sending a backed-up
 * instance its full share while a freshly scaled-out one idled: under the cpu-spike drill beside
 * CPU-bound processes its queue grew past the client's timeout.
 */
import type { InFlightRequests, Target, TargetGroupController } from "../target-group/controller.ts";
import type { Ejections } from "./ejections.ts";

/** What the balancer needs of the target group (a worker process gets it over IPC). */
export type TargetSource = Pick<TargetGroupController, "routable" | "get" | "reportConnectionFailure">;

export class LeastOutstandingRouter {
  private next = 0;
  private idsOf?: readonly Target[];
  private ids: readonly string[] = [];

  constructor(
    private readonly targetGroup: TargetSource,
    private readonly inFlight: InFlightRequests,
    /** Set once the balancer's outlier detection exists (it reads `rotationIds`). */
    public ejections?: Ejections,
  ) {}

  /** Where requests may go now: the target group's routable targets minus the ejected ones. */
  rotation(): readonly Target[] {
    const routable = this.targetGroup.routable();
    const ejections = this.ejections;
    if (!ejections) return routable;
    const now = Date.now();
    const inRotation = routable.filter((t) => !ejections.isEjected(t.instanceId, now));
    // Ejection never empties the rotation (max ejection percent), but a target group that shrank
    // under an ejection could: fail open.
    return inRotation.length > 0 ? inRotation : routable;
  }

  /** Whether a target this request has not tried yet is in rotation. */
  hasUntried(tried: readonly string[]): boolean {
    return this.rotation().some((t) => !tried.includes(t.instanceId));
  }

  /** The routable targets' ids, rebuilt only when the target group's rotation changes. */
  readonly rotationIds = (): readonly string[] => {
    const routable = this.targetGroup.routable();
    if (routable !== this.idsOf) {
      this.idsOf = routable;
      this.ids = routable.map((t) => t.instanceId);
    }
    return this.ids;
  };

  /**
   * The target to try next, skipping the ones this request already tried. Walks the target
   * group's array in place (no per-request copy: this runs for every request).
   */
  pick(tried: readonly string[]): Target | undefined {
    const routable = this.targetGroup.routable();
    const start = this.next++;
    const now = this.ejections ? Date.now() : 0;
    const best = this.leastBusy(routable, start, tried, now);
    // Ejection never empties the rotation (max ejection percent), but a target group that shrank
    // under an ejection could: fail open.
    return best !== null ? best : (this.leastBusy(routable, start, tried, -1) ?? undefined);
  }

  /** `null` when every target is ejected at `now` (-1: ignore ejections); undefined: all tried. */
  private leastBusy(
    targets: readonly Target[],
    start: number,
    tried: readonly string[],
    now: number,
  ): Target | undefined | null {
    let best: Target | undefined;
    let bestInFlight = Number.POSITIVE_INFINITY;
    let inRotation = 0;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(start + i) % targets.length];
      if (!target || (now >= 0 && this.ejections?.isEjected(target.instanceId, now))) continue;
      inRotation++;
      if (tried.includes(target.instanceId)) continue;
      const inFlight = this.inFlight.inFlight(target.instanceId);
      if (inFlight < bestInFlight) {
        best = target;
        bestInFlight = inFlight;
      }
    }
    return inRotation === 0 && targets.length > 0 ? null : best;
  }
}
