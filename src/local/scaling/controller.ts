import pidusage from "pidusage";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { InstanceGroupController } from "../instance-group/controller.ts";

/** Average busy share (CPU or event loop) at which instances are saturated: scale out at once. */
export const SATURATED_PERCENT = 90;

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

export interface TrackingState {
  desired: number;
  min: number;
  max: number;
  /** The group's average busy share this evaluation (percent). */
  average: number;
  /** Evaluations in a row that wanted more, and fewer, instances. */
  above: number;
  below: number;
}

/**
 * One evaluation of target tracking, a pure function: the new counts and, when it is time, the
 * capacity to scale to. Out after `evaluationPeriods` evaluations above target, or at once when
 * saturated; in one instance at a time, after three times as many evaluations clearly below target
 * and the cooldown.
 */
export function trackTarget(
  state: TrackingState,
  settings: Pick<TargetTrackingSettings, "targetCpuPercent" | "evaluationPeriods" | "scaleInCooldownMs">,
  sinceLastActivityMs: number,
): { above: number; below: number; scaleTo?: number; reason?: string } {
  const { desired, min, max, average } = state;
  const target = settings.targetCpuPercent;
  const wanted = Math.min(max, Math.max(min, Math.ceil((desired * average) / target)));
  const above = wanted > desired ? state.above + 1 : 0;
  // Scale-in needs the average clearly below target (10 % margin), as target tracking does.
  const below = wanted < desired && average < target * 0.9 ? state.below + 1 : 0;
  // Saturated (the event loop busy nearly all the time): requests are queueing, and each second of
  // waiting adds a second to every queued request's latency. One evaluation is proof enough.
  const saturated = average >= SATURATED_PERCENT && wanted > desired;
  if (above >= settings.evaluationPeriods || saturated) {
    return {
      above: 0,
      below: 0,
      scaleTo: wanted,
      reason: `average CPU (or event-loop busy) ${average.toFixed(0)} % above target ${target} %${saturated ? " (saturated)" : ""}`,
    };
  }
  if (below >= settings.evaluationPeriods * 3 && sinceLastActivityMs >= settings.scaleInCooldownMs) {
    // One instance at a time: scale-in is the careful direction.
    return {
      above: 0,
      below: 0,
      scaleTo: desired - 1,
      reason: `average CPU (or event-loop busy) ${average.toFixed(0)} % below target ${target} %`,
    };
  }
  return { above, below };
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
      if (counted.length === 0) {
        // No instance to measure (a pilot light at zero, a region down): no average to show, rather
        // than the last one of instances long gone (issue 25, item 7).
        this.lastAverage = undefined;
        return;
      }
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
      if (values.length === 0) {
        this.lastAverage = undefined;
        return;
      }
      const average = values.reduce((a, b) => a + b, 0) / values.length;
      this.lastAverage = average;
      const step = trackTarget(
        { ...this.group.capacity, average, above: this.above, below: this.below },
        this.settings,
        now - this.lastActivity,
      );
      this.above = step.above;
      this.below = step.below;
      if (step.scaleTo !== undefined) this.scale(step.scaleTo, step.reason ?? "");
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
