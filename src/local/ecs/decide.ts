import {
  type ContainerInstanceState,
  capacityProviderDecision,
  freeCapacity,
  placeTask,
  type TaskSize,
} from "../../stack/ecs-placement.ts";
import {
  type MemberHealth,
  type MemberLifecycle,
  planReplacements,
  type ReplacementPolicy,
  type Slowdown,
} from "../instance-group/replacement.ts";

/**
 * The local ECS topology's decisions, pure functions of observed state (no processes, no timers):
 * where the next task goes (placement strategy), how many container instances the capacity
 * provider wants (managed scaling), and which tasks the service starts, replaces and stops. The
 * controllers (service.ts, capacity-provider.ts) observe, call these and act through their seams.
 * Placement and managed scaling are the stack's model of ECS (src/stack/ecs-placement.ts).
 */

export { type ContainerInstanceState, capacityProviderDecision, freeCapacity, placeTask, type TaskSize };

/** The service's task count: tasks to start (desired minus running) or to stop (the newest first). */
export function serviceDecision(desired: number, running: string[]): { start: number; stop: string[] } {
  if (running.length < desired) return { start: desired - running.length, stop: [] };
  return { start: 0, stop: running.slice(desired).reverse() };
}

/** A task as the service scheduler sees it (its target-group health included). */
export interface ObservedTask {
  taskId: string;
  az: string;
  /** launching: placed, its process not listening yet; running: registered; terminating: stopping. */
  lifecycle: MemberLifecycle;
  health: MemberHealth;
  /** When it was started (ms, the controller's clock). */
  startedAt: number;
  unhealthySince?: number;
  healthySince?: number;
  everHealthy: boolean;
  /** The task this one was started to replace, while that one still runs. */
  replaces?: string;
}

export interface ServiceState {
  desired: number;
  /** In start order (oldest first). */
  tasks: readonly ObservedTask[];
  /** The target group's group-wide slowdown (every task's health checks timing out). */
  slowdown?: Slowdown;
}

export interface ServiceDecision {
  /** Tasks to place and start; `replaces` names the task each one replaces. */
  start: { replaces?: string; reason: string }[];
  /** Tasks to drain and stop. */
  stop: { taskId: string; reason: string }[];
  /** Tasks that look broken but are kept, and why. */
  held: { taskId: string; reason: string }[];
}

/**
 * The service scheduler's next step, with the instance group's replacement rules
 * (../instance-group/replacement.ts): a task never healthy within the grace period, or unhealthy
 * for the replacement delay while another task serves, is replaced, never while every task's
 * checks time out (overload) or none is healthy, one replacement per zone at a time. The
 * replacement starts first (ECS with maximumPercent 200) and the replaced task stops once its
 * replacement is healthy. A task that exited is gone from `tasks`: started again at once.
 */
export function decideService(state: ServiceState, policy: ReplacementPolicy, now: number): ServiceDecision {
  const live = state.tasks.filter((t) => t.lifecycle !== "terminating");
  const plan = planReplacements(
    live.map((t) => ({ ...t, id: t.taskId, launchedAt: t.startedAt })),
    { slowdown: state.slowdown, policy, now, noun: "task" },
  );
  const stop: ServiceDecision["stop"] = plan.retire.map((r) => ({ taskId: r.id, reason: r.reason }));
  const start: ServiceDecision["start"] = [];
  const leaving = new Set([...plan.inFlight.keys(), ...plan.replace.map((r) => r.member.id)]);
  const counted = live.filter((t) => !leaving.has(t.taskId));
  let count = counted.length;
  for (const { member, reason } of plan.replace) {
    if (count < state.desired) {
      start.push({ replaces: member.id, reason: `replacing ${member.id}: ${reason}` });
      count++;
    } else {
      // Above the desired count (a scale-in under way): it simply goes.
      stop.push({ taskId: member.id, reason });
    }
  }
  const scaled = serviceDecision(
    state.desired - (count - counted.length),
    counted.map((t) => t.taskId),
  );
  for (let n = 0; n < scaled.start; n++) {
    start.push({ reason: `running ${count} of ${state.desired} desired` });
    count++;
  }
  for (const taskId of scaled.stop) stop.push({ taskId, reason: "above the desired count" });
  return { start, stop, held: plan.held.map((h) => ({ taskId: h.id, reason: h.reason })) };
}
