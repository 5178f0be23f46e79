import { request } from "undici";
import type { EventPublisher } from "../events/bus.ts";

export interface HealthCheckSettings {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export type TargetHealth = "initial" | "healthy" | "unhealthy" | "draining";

export interface Target {
  instanceId: string;
  az: string;
  host: string;
  port: number;
  health: TargetHealth;
  reason?: string;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
}

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

  constructor(
    readonly healthCheck: HealthCheckSettings,
    private readonly events: EventPublisher,
    private readonly deregistrationDelayMs = 0,
  ) {}

  register(target: { instanceId: string; az: string; host: string; port: number }): void {
    const t: Target = { ...target, health: "initial", consecutiveSuccesses: 0, consecutiveFailures: 0 };
    this.targets.set(t.instanceId, t);
    this.events.publish({ type: "target.registered", instanceId: t.instanceId, az: t.az, port: t.port });
    // First check at once: a fresh target should not wait a whole interval to enter rotation.
    void this.check(t);
    this.timers.set(
      t.instanceId,
      setInterval(() => void this.check(t), this.healthCheck.intervalMs),
    );
  }

  /** Takes the target out of rotation now; forgets it after the deregistration delay. */
  async deregister(instanceId: string): Promise<void> {
    const t = this.targets.get(instanceId);
    if (!t) return;
    clearInterval(this.timers.get(instanceId));
    this.timers.delete(instanceId);
    t.health = "draining";
    this.updateRotation();
    if (this.deregistrationDelayMs > 0) await new Promise((r) => setTimeout(r, this.deregistrationDelayMs));
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

  private async check(t: Target): Promise<void> {
    if (!this.targets.has(t.instanceId) || t.health === "draining") return;
    let failure: string | undefined;
    try {
      const res = await request(`http://${t.host}:${t.port}${this.healthCheck.path}`, {
        headersTimeout: this.healthCheck.timeoutMs,
        bodyTimeout: this.healthCheck.timeoutMs,
        // A fresh connection each time, like the ALB: proves the instance still accepts connections.
        reset: true,
      });
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode > 399) failure = `health check answered ${res.statusCode}`;
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      failure = `health check failed: ${e.code ?? e.message}`;
    }
    // The target may have been deregistered while the check was in flight.
    if (!this.targets.has(t.instanceId) || (t.health as TargetHealth) === "draining") return;
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
        this.setHealth(t, "unhealthy", failure);
      }
    }
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

  private updateRotation(): void {
    this.rotation = [...this.targets.values()].filter((t) => t.health === "healthy");
  }
}
