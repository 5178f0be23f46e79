/**
 * Outlier detection as the balancer applies it: each try's outcome goes to the detector
 * (outlier-detection.ts), the ejections it decides are published, and each ejected target's
 * return to rotation is published when its ejection runs out.
 */
import type { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { Target } from "../target-group/controller.ts";
import { OutlierDetector, type OutlierDetectionSettings, type TryOutcome } from "./outlier-detection.ts";

export class Ejections {
  private readonly detector: OutlierDetector;
  private returnTimer?: NodeJS.Timeout;

  /**
   * @param rotationIds the routable targets' ids now
   * @param perTryTimeoutMs a target is slow only next to peers that answered in time within two
   *   per-try timeouts (1 s at least); at once only if their answers took a quarter of it or less
   *   (median), as OutlierDetector says
   */
  constructor(
    settings: OutlierDetectionSettings,
    perTryTimeoutMs: number,
    private readonly rotationIds: () => readonly string[],
    private readonly get: (instanceId: string) => Target | undefined,
    private readonly events: EventPublisher,
    private readonly guard: ControllerGuard,
  ) {
    this.detector = new OutlierDetector(settings, Math.max(1000, 2 * perTryTimeoutMs), perTryTimeoutMs / 4);
  }

  isEjected(instanceId: string, now: number): boolean {
    return this.detector.isEjected(instanceId, now);
  }

  /** Whether another target in rotation answers in time (see OutlierDetector.hasFastPeer). */
  hasFastPeer(instanceId: string): boolean {
    return this.detector.hasFastPeer(instanceId, Date.now(), this.rotationIds());
  }

  /** Records one try's outcome and time taken (and publishes the ejection it causes). */
  observe(target: Target, outcome: TryOutcome, latencyMs?: number): void {
    const ejection = this.detector.observe(
      target.instanceId,
      outcome,
      Date.now(),
      this.rotationIds(),
      latencyMs,
    );
    if (!ejection) return;
    this.events.publish({ type: "target.ejected", az: target.az, ...ejection });
    this.scheduleReturns();
  }

  /** An ejection decided by another worker of the same listener: shared target health. */
  apply(instanceId: string, forMs: number): void {
    this.detector.eject(instanceId, Date.now() + forMs);
    this.scheduleReturns();
  }

  forget(instanceId: string): void {
    this.detector.forget(instanceId);
  }

  stop(): void {
    clearTimeout(this.returnTimer);
  }

  /** Publishes each ejected target's return to rotation when its ejection runs out. */
  private scheduleReturns(): void {
    const next = this.detector.nextReturn();
    clearTimeout(this.returnTimer);
    if (next === undefined) return;
    this.returnTimer = setTimeout(
      () =>
        this.guard.run(() => {
          for (const instanceId of this.detector.returned(Date.now())) {
            const target = this.get(instanceId);
            if (target) this.events.publish({ type: "target.returned", instanceId, az: target.az });
          }
          this.scheduleReturns();
        }, "ejected targets return when the next ejection or return is scheduled"),
      Math.max(0, next - Date.now()),
    );
    this.returnTimer.unref();
  }
}
