/**
 * What draining needs of the balancer: the requests in flight to each target (a deregistered
 * target is stopped only once none are left), and the answer a target that is shutting down gives
 * instead of handling a request (`X-Stayup-Draining`), which the balancer treats as a refused
 * connection: the request never ran, so it may go elsewhere whatever its method.
 */
import type { InFlightRequests } from "../target-group/controller.ts";

/** The error code of a try the target declined because it is draining. */
export const TARGET_DRAINING = "STAYUP_TARGET_DRAINING";

export const targetDraining = (): Error =>
  Object.assign(new Error("target is draining"), { code: TARGET_DRAINING });

/** Requests forwarded to each target and not yet answered (also what least-outstanding routing reads). */
export class InFlightByTarget implements InFlightRequests {
  private readonly counts = new Map<string, number>();

  inFlight(instanceId: string): number {
    return this.counts.get(instanceId) ?? 0;
  }

  began(instanceId: string): void {
    this.counts.set(instanceId, (this.counts.get(instanceId) ?? 0) + 1);
  }

  ended(instanceId: string): void {
    const left = (this.counts.get(instanceId) ?? 1) - 1;
    if (left > 0) this.counts.set(instanceId, left);
    else this.counts.delete(instanceId);
  }
}
