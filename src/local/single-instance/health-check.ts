import { httpCheck } from "../../shared/http-check.ts";
import type { HealthCheckSettings } from "../target-group/controller.ts";

export type InstanceHealth = "initial" | "healthy" | "unhealthy";

export interface HealthCheckState {
  health: InstanceHealth;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
}

export const initialHealth = (): HealthCheckState => ({
  health: "initial",
  consecutiveSuccesses: 0,
  consecutiveFailures: 0,
});

/**
 * One check's outcome applied to the state, pure: healthy after `healthyThreshold` passes in a row,
 * unhealthy after `unhealthyThreshold` failures in a row (the target group's rule, same thresholds).
 */
export function nextHealth(
  state: HealthCheckState,
  passed: boolean,
  thresholds: Pick<HealthCheckSettings, "healthyThreshold" | "unhealthyThreshold">,
): HealthCheckState {
  if (passed) {
    const consecutiveSuccesses = state.consecutiveSuccesses + 1;
    return {
      health: consecutiveSuccesses >= thresholds.healthyThreshold ? "healthy" : state.health,
      consecutiveSuccesses,
      consecutiveFailures: 0,
    };
  }
  const consecutiveFailures = state.consecutiveFailures + 1;
  return {
    health: consecutiveFailures >= thresholds.unhealthyThreshold ? "unhealthy" : state.health,
    consecutiveSuccesses: 0,
    consecutiveFailures,
  };
}

/**
 * The single instance's health check: GET `path` on the instance itself every interval (there is no
 * load balancer to do it). `onChange` hears each transition. Its timer is cleared by stop(), which
 * the group calls for every instance that ends, so nothing outlives the stack.
 */
export class InstanceHealthCheck {
  private state = initialHealth();
  private timer?: NodeJS.Timeout;
  private checking = false;
  lastFailure?: string;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly settings: HealthCheckSettings,
    private readonly onChange: (health: InstanceHealth, reason?: string) => void,
  ) {}

  get health(): InstanceHealth {
    return this.state.health;
  }

  start(): void {
    if (this.timer) return;
    // The first check at once: a fresh instance is judged as early as the target group would.
    void this.check();
    this.timer = setInterval(() => void this.check(), this.settings.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async check(): Promise<void> {
    if (this.checking) return; // a slow check is not stacked on another
    this.checking = true;
    let failure: string | undefined;
    try {
      const res = await httpCheck(`http://${this.target.host}:${this.target.port}${this.settings.path}`, {
        timeoutMs: this.settings.timeoutMs,
      });
      if (res.statusCode < 200 || res.statusCode > 399) failure = `health check answered ${res.statusCode}`;
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      failure = `health check failed: ${e.code ?? e.message}`;
    } finally {
      this.checking = false;
    }
    if (!this.timer) return; // stopped while the check was in flight
    const before = this.state.health;
    this.state = nextHealth(this.state, failure === undefined, this.settings);
    if (failure) this.lastFailure = failure;
    if (this.state.health !== before) this.onChange(this.state.health, failure);
  }
}
