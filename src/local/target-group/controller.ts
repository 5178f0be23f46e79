import { httpCheck } from "../../shared/http-check.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";

export interface HealthCheckSettings {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export type TargetHealth = "initial" | "healthy" | "unhealthy" | "draining";

/** Who knows how many requests a target is serving (the load balancer): draining waits for them. */
export interface InFlightRequests {
  inFlight(instanceId: string): number;
}

export interface Target {
  instanceId: string;
  az: string;
  host: string;
  port: number;
  health: TargetHealth;
  reason?: string;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  /** When its health check last timed out (it is alive, only slow), and when it was registered. */
  lastSlowAt?: number;
  registeredAt: number;
  /** Out of rotation because its checks timed out, not because they failed. */
  unhealthyBySlowness?: boolean;
}

/**
 * One health check of `target`, as the ALB makes it: GET `path` on a fresh connection (proving the
 * instance still accepts connections), answered within `timeoutMs`, passing on 200 to 399. Never
 * throws: `failure` says why it did not pass, `code` is the error's code when it failed to answer.
 */
export async function probeHealth(
  target: { host: string; port: number },
  settings: Pick<HealthCheckSettings, "path" | "timeoutMs">,
): Promise<{ failure?: string; code?: string }> {
  try {
    const res = await httpCheck(`http://${target.host}:${target.port}${settings.path}`, {
      timeoutMs: settings.timeoutMs,
    });
    if (res.statusCode < 200 || res.statusCode > 399)
      return { failure: `health check answered ${res.statusCode}` };
    return {};
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { failure: `health check failed: ${e.code ?? e.message}`, code: e.code };
  }
}

/** A timed-out check: the target accepted the connection (or is queueing it) and answered late. */
const isTimeout = (code: string | undefined) => code !== undefined && code.endsWith("_TIMEOUT");

/**
 * A target group: the registered targets and their health, by the ALB's rules. Active checks
 * run every interval; a target turns healthy after `healthyThreshold` passes in a row and
 * unhealthy after `unhealthyThreshold` failures. Passive checks go further than the ALB: a
 * refused connection reported by the load balancer takes the target out at once.
 */
export class TargetGroupController {
  private readonly targets = new Map<string, Target>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private rotation: Target[] = [];
  private inFlightRequests?: InFlightRequests;
  /**
   * Group-wide slowdown: every target's checks timed out within the last `slowWindowMs`. Then
   * health flaps on all of them at random, and routing only to the one that just passed two checks
   * piles the whole load on it (it fails next, and so on): the load balancer keeps routing to the
   * slow ones too, and the instance group does not replace them (see decide.ts).
   */
  private slow = false;
  private readonly slowWindowMs: number;
  /** A failed check is an event; the next interval checks again. */
  private readonly guard: ControllerGuard;

  constructor(
    readonly healthCheck: HealthCheckSettings,
    private readonly events: EventPublisher,
    readonly deregistrationDelayMs = 0,
  ) {
    this.slowWindowMs = 10 * healthCheck.intervalMs;
    this.guard = new ControllerGuard({ controller: "target-group", events });
  }

  /** Whether the whole group is slow (every target's checks timing out of late). */
  get slowdown(): boolean {
    return this.slow;
  }

  /** Lets draining end as soon as a deregistered target has no request in flight. */
  drainWith(source: InFlightRequests): void {
    this.inFlightRequests = source;
  }

  register(target: { instanceId: string; az: string; host: string; port: number }): void {
    const t: Target = {
      ...target,
      health: "initial",
      consecutiveSuccesses: 0,
      consecutiveFailures: 0,
      registeredAt: Date.now(),
    };
    this.targets.set(t.instanceId, t);
    this.events.publish({ type: "target.registered", instanceId: t.instanceId, az: t.az, port: t.port });
    // First check at once: a fresh target should not wait a whole interval to enter rotation.
    const check = this.guard.wrap(
      () => this.check(t),
      `${t.instanceId} is checked again at the next interval`,
    );
    check();
    this.timers.set(t.instanceId, setInterval(check, this.healthCheck.intervalMs));
  }

  /**
   * Takes the target out of rotation now (no new request reaches it) and resolves once it has
   * drained: its in-flight requests finished, or the deregistration delay passed, whichever is
   * first. Without an in-flight source it waits the whole delay, as the ALB does.
   */
  async deregister(instanceId: string): Promise<void> {
    const t = this.targets.get(instanceId);
    if (!t) return;
    clearInterval(this.timers.get(instanceId));
    this.timers.delete(instanceId);
    t.health = "draining";
    this.updateRotation();
    // Load balancer worker processes take it out of their rotation on this event.
    this.events.publish({
      type: "target.draining",
      instanceId,
      az: t.az,
      deregistrationDelayMs: this.deregistrationDelayMs,
    });
    const deadline = Date.now() + this.deregistrationDelayMs;
    const busy = () => this.inFlightRequests === undefined || this.inFlightRequests.inFlight(instanceId) > 0;
    while (Date.now() < deadline && busy() && this.targets.get(instanceId) === t) {
      await new Promise((r) => setTimeout(r, Math.min(25, deadline - Date.now())));
    }
    if (this.targets.get(instanceId) !== t) return; // removed meanwhile (its process exited)
    this.targets.delete(instanceId);
    this.events.publish({ type: "target.deregistered", instanceId, az: t.az });
  }

  /** Removes a target that is already gone (its process exited): no draining to wait for. */
  remove(instanceId: string): void {
    const t = this.targets.get(instanceId);
    if (!t) return;
    clearInterval(this.timers.get(instanceId));
    this.timers.delete(instanceId);
    this.targets.delete(instanceId);
    this.updateRotation();
    this.events.publish({ type: "target.deregistered", instanceId, az: t.az });
  }

  /** Passive health: the load balancer could not reach this target. */
  reportConnectionFailure(instanceId: string, reason: string): void {
    const t = this.targets.get(instanceId);
    if (!t || t.health === "unhealthy" || t.health === "draining") return;
    t.consecutiveSuccesses = 0;
    t.consecutiveFailures = this.healthCheck.unhealthyThreshold;
    t.unhealthyBySlowness = false;
    this.setHealth(t, "unhealthy", `passive check: ${reason}`);
  }

  /** Healthy targets in registration order: what the load balancer may route to. */
  inRotation(): readonly Target[] {
    return this.rotation;
  }

  /**
   * Where the load balancer may send requests: the healthy targets; if none is healthy, every
   * target still registered whose failure was a slow or failed check (the ALB fails open rather
   * than answer 503 while instances may still serve). Refused connections stay out: nothing listens.
   */
  routable(): readonly Target[] {
    if (this.slow) {
      return [...this.targets.values()].filter(
        (t) => t.health === "healthy" || (t.health === "unhealthy" && t.unhealthyBySlowness),
      );
    }
    if (this.rotation.length > 0) return this.rotation;
    return [...this.targets.values()].filter(
      (t) => t.health === "unhealthy" && !(t.reason ?? "").startsWith("passive check"),
    );
  }

  get(instanceId: string): Target | undefined {
    return this.targets.get(instanceId);
  }

  all(): Target[] {
    return [...this.targets.values()];
  }

  stop(): void {
    for (const timer of this.timers.values()) clearInterval(timer);
    this.timers.clear();
  }

  /** One health check of `t` and its outcome (protected: a test's subclass makes it fail). */
  protected async check(t: Target): Promise<void> {
    if (!this.targets.has(t.instanceId) || t.health === "draining") return;
    const { failure, code } = await probeHealth(t, this.healthCheck);
    const timedOut = isTimeout(code);
    // The target may have been deregistered while the check was in flight.
    if (!this.targets.has(t.instanceId) || (t.health as TargetHealth) === "draining") return;
    if (timedOut) t.lastSlowAt = Date.now();
    if (failure === undefined) {
      t.consecutiveFailures = 0;
      t.consecutiveSuccesses++;
      if (t.health !== "healthy" && t.consecutiveSuccesses >= this.healthCheck.healthyThreshold) {
        this.setHealth(t, "healthy");
      }
    } else {
      t.consecutiveSuccesses = 0;
      t.consecutiveFailures++;
      if (t.health !== "unhealthy" && t.consecutiveFailures >= this.healthCheck.unhealthyThreshold) {
        t.unhealthyBySlowness = timedOut;
        this.setHealth(t, "unhealthy", failure);
      }
    }
    this.updateSlowdown();
  }

  private setHealth(t: Target, health: "healthy" | "unhealthy", reason?: string): void {
    t.health = health;
    t.reason = reason;
    this.updateRotation();
    if (health === "healthy")
      this.events.publish({ type: "target.healthy", instanceId: t.instanceId, az: t.az });
    else
      this.events.publish({
        type: "target.unhealthy",
        instanceId: t.instanceId,
        az: t.az,
        reason: reason ?? "unhealthy",
      });
  }

  /**
   * The group is slow when every target that has been registered for the window has had a check
   * time out within it; it is no longer slow once one of them has not. A single slow target next to
   * prompt ones is an outlier (taken out and, if it stays so, replaced), not a slowdown.
   */
  private updateSlowdown(): void {
    const now = Date.now();
    const observed = [...this.targets.values()].filter(
      (t) => t.health !== "draining" && now - t.registeredAt >= this.slowWindowMs,
    );
    const slow =
      observed.length > 0 &&
      observed.every((t) => t.lastSlowAt !== undefined && now - t.lastSlowAt < this.slowWindowMs);
    if (slow === this.slow) return;
    this.slow = slow;
    this.updateRotation();
    this.events.publish({
      type: "target.slowdown",
      slow,
      reason: slow
        ? `every target's health checks timed out within ${this.slowWindowMs / 1000} s: the group is slow, not broken; slow targets stay routable`
        : "a target answers its health checks in time again: slowdown over",
    });
  }

  private updateRotation(): void {
    this.rotation = [...this.targets.values()].filter((t) => t.health === "healthy");
  }
}
