import pidusage from "pidusage";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { InstanceGroupController } from "../instance-group/controller.ts";

export interface TargetTrackingSettings {
  /** The average CPU (percent of one core per instance) the group is kept at. */
  targetCpuPercent: number;
  evaluationIntervalMs: number;
  /** Consecutive evaluations above target before scaling out. */
  evaluationPeriods: number;
  /** A new instance's CPU is not counted for this long (it is still warming up). */
  warmupMs: number;
  /** No scale-in sooner than this after the last scaling activity. */
  scaleInCooldownMs: number;
}

/**
 * Target tracking on average CPU, like EC2 Auto Scaling's policy: desired = ceil(current × average
 * / target), bounded by the group's min and max. Scale-out is prompt; scale-in waits for the
 * cooldown and for the average to stay low, and goes through the group (deregister, then SIGTERM),
 * so no request is lost.
 */
export class ScalingController {
  private timer?: NodeJS.Timeout;
  private above = 0;
  private below = 0;
  private lastActivity = 0;
  private evaluating = false;
  /** Last measured CPU per instance, for status. */
  readonly cpu = new Map<string, number>();
  lastAverage: number | undefined;
  /** A failed evaluation is an event; the next one retries it. */
  private readonly guard: ControllerGuard;

  constructor(
    private readonly group: Pick<InstanceGroupController, "list" | "capacity" | "setDesiredCapacity">,
    readonly settings: TargetTrackingSettings,
    events: EventPublisher,
  ) {
    this.guard = new ControllerGuard({ controller: "scaling", events });
  }

  start(): void {
    this.timer = setInterval(
      this.guard.wrap(() => this.evaluate(), "retried at the next evaluation"),
      this.settings.evaluationIntervalMs,
    );
  }

  stop(): void {
    clearInterval(this.timer);
    pidusage.clear();
  }

  async evaluate(): Promise<void> {
    if (this.evaluating) return;
    this.evaluating = true;
    try {
      const now = Date.now();
      const counted = this.group
        .list()
        .filter((i) => i.state === "in-service" && now - i.launchedAt >= this.settings.warmupMs);
      if (counted.length === 0) return;
      const samples = await Promise.all(
        counted.map(async (i) => {
          try {
            const stat = await pidusage(i.pid);
            this.cpu.set(i.instanceId, stat.cpu);
            // On a host whose CPUs are busy with other work, a saturated instance gets less CPU
            // time than it needs: its CPU percent stays below target while requests queue up, and
            // the group never scaled out (the cpu-spike drill beside two CPU-bound processes).
            // Its event loop's busy share counts the time it waits for a CPU too, so the group
            // scales on whichever is higher: demand, not the share the host could give it.
            const busy = i.eventLoopUtilization === undefined ? 0 : i.eventLoopUtilization * 100;
            return Math.max(stat.cpu, busy);
          } catch {
            return undefined; // exited between listing and sampling
          }
        }),
      );
      const values = samples.filter((v): v is number => v !== undefined);
      if (values.length === 0) return;
      const average = values.reduce((a, b) => a + b, 0) / values.length;
      this.lastAverage = average;
      const { desired, min, max } = this.group.capacity;
      const target = this.settings.targetCpuPercent;
      const wanted = Math.min(max, Math.max(min, Math.ceil((desired * average) / target)));
      this.above = wanted > desired ? this.above + 1 : 0;
      // Scale-in needs the average clearly below target (10 % margin), as target tracking does.
      this.below = wanted < desired && average < target * 0.9 ? this.below + 1 : 0;
      if (this.above >= this.settings.evaluationPeriods) {
        this.scale(
          wanted,
          `average CPU (or event-loop busy) ${average.toFixed(0)} % above target ${target} %`,
        );
      } else if (
        this.below >= this.settings.evaluationPeriods * 3 &&
        now - this.lastActivity >= this.settings.scaleInCooldownMs
      ) {
        // One instance at a time: scale-in is the careful direction.
        this.scale(
          desired - 1,
          `average CPU (or event-loop busy) ${average.toFixed(0)} % below target ${target} %`,
        );
      }
    } finally {
      this.evaluating = false;
    }
  }

  private scale(desired: number, reason: string): void {
    this.above = 0;
    this.below = 0;
    this.lastActivity = Date.now();
    this.group.setDesiredCapacity(desired, reason);
  }
}
