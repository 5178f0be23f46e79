import { randomBytes } from "node:crypto";
import path from "node:path";
import type { PlacementStep } from "../../stack/ecs.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher, TimedStackEvent } from "../events/bus.ts";
import type { TargetRegistry } from "../instance-group/controller.ts";
import type { InstanceHandle, Launcher } from "../instance-group/launcher.ts";
import type { ContainerInstance } from "./container-instances.ts";
import { type ContainerInstanceState, placeTask, serviceDecision, type TaskSize } from "./decide.ts";

export interface ServiceOptions {
  region: string;
  desired: number;
  task: TaskSize;
  placement: PlacementStep[];
  /** The container instances tasks may be placed on, as observed now. */
  containerInstances: () => ContainerInstance[];
  artifact: () => string;
  environment: () => Record<string, string>;
  logDir: string;
  /** A task never healthy this long after it started is stopped and replaced (ALB health). */
  healthCheckGracePeriodMs: number;
  /** A task unhealthy this long is stopped and replaced. */
  unhealthyReplacementMs: number;
}

export interface Task {
  taskId: string;
  containerInstanceId: string;
  az: string;
  startedAt: number;
  handle?: InstanceHandle;
  health: "initial" | "healthy" | "unhealthy";
  unhealthySince?: number;
  stopping: boolean;
  stopReason?: string;
}

const NEXT_PASS = "retried at the next reconcile pass";

const newTaskId = () => randomBytes(16).toString("hex");

/**
 * The ECS service scheduler: keeps the desired task count, places each task by the environment's
 * strategy (decide.ts), registers it in the target group, and replaces a task that stops or stays
 * unhealthy. Tasks it cannot place are counted for the capacity provider.
 */
export class EcsServiceController {
  readonly tasks = new Map<string, Task>();
  /** Tasks the last pass could not place (no container instance with room). */
  unplaced = 0;
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private readonly launches = new Set<Promise<unknown>>();
  private readonly unsubscribe: () => void;
  private readonly guard: ControllerGuard;

  constructor(
    readonly options: ServiceOptions,
    private readonly launcher: Launcher,
    private readonly targetGroup: TargetRegistry,
    private readonly events: EventPublisher,
  ) {
    this.guard = new ControllerGuard({ controller: "ecs-service", events });
    this.unsubscribe = events.subscribe(
      this.guard.wrap((e: TimedStackEvent) => {
        if (e.type !== "target.healthy" && e.type !== "target.unhealthy") return;
        const task = this.tasks.get(e.instanceId);
        if (!task || task.stopping) return;
        task.health = e.type === "target.healthy" ? "healthy" : "unhealthy";
        task.unhealthySince = task.health === "unhealthy" ? (task.unhealthySince ?? Date.now()) : undefined;
      }, NEXT_PASS),
    );
  }

  get desired(): number {
    return this.options.desired;
  }

  start(): void {
    this.stopped = false;
    this.guarded();
    this.timer = setInterval(() => this.guarded(), 500);
  }

  private guarded(): void {
    this.guard.run(() => this.reconcile(), NEXT_PASS);
  }

  /** Container instances with the tasks placed on them: what placement and the capacity provider see. */
  observe(): ContainerInstanceState[] {
    return this.options.containerInstances().map((ci) => ({
      id: ci.containerInstanceId,
      az: ci.az,
      cpuUnits: ci.cpuUnits,
      memoryMiB: ci.memoryMiB,
      tasks: [...this.tasks.values()]
        .filter((t) => t.containerInstanceId === ci.containerInstanceId)
        .map(() => this.options.task),
    }));
  }

  /** One pass: stop broken tasks, then start or stop tasks toward the desired count. */
  reconcile(): void {
    if (this.stopped) return;
    const now = Date.now();
    // As the instance group: never while no task is healthy (a service-wide slowdown is overload,
    // and replacing every task would only deepen it).
    const anyHealthy = [...this.tasks.values()].some((t) => t.health === "healthy" && !t.stopping);
    for (const task of this.tasks.values()) {
      if (task.stopping || !task.handle || !anyHealthy) continue;
      if (task.health === "initial" && now - task.startedAt > this.options.healthCheckGracePeriodMs) {
        this.stopTask(task, "not healthy within the health check grace period");
      } else if (
        task.unhealthySince !== undefined &&
        now - task.unhealthySince > this.options.unhealthyReplacementMs
      ) {
        this.stopTask(task, "unhealthy in the target group");
      }
    }
    const running = [...this.tasks.values()].filter((t) => !t.stopping).map((t) => t.taskId);
    const decision = serviceDecision(this.options.desired, running);
    for (const taskId of decision.stop) {
      const task = this.tasks.get(taskId);
      if (task) this.stopTask(task, "above the desired count");
    }
    let unplaced = 0;
    for (let n = 0; n < decision.start; n++) {
      const containerInstanceId = placeTask(this.observe(), this.options.task, this.options.placement);
      if (!containerInstanceId) {
        unplaced++;
        continue;
      }
      this.launch(containerInstanceId);
    }
    if (unplaced > 0 && unplaced !== this.unplaced) {
      this.events.publish({
        type: "task.unplaced",
        reason: `${unplaced} task(s) do not fit on any container instance; waiting for the capacity provider`,
      });
    }
    this.unplaced = unplaced;
  }

  private launch(containerInstanceId: string): void {
    const az =
      this.options.containerInstances().find((c) => c.containerInstanceId === containerInstanceId)?.az ?? "";
    const taskId = newTaskId();
    const task: Task = {
      taskId,
      containerInstanceId,
      az,
      startedAt: Date.now(),
      health: "initial",
      stopping: false,
    };
    this.tasks.set(taskId, task);
    const placement = this.options.placement.map((s) => `${s.type}(${s.field})`).join(", ");
    this.events.publish({ type: "task.placed", taskId, containerInstanceId, az, placement });
    let started: Promise<InstanceHandle>;
    try {
      started = this.launcher.launch({
        instanceId: taskId,
        az,
        region: this.options.region,
        version: "1",
        artifact: this.options.artifact(),
        environment: this.options.environment(),
        workingDirectory: process.cwd(),
        logFile: path.join(this.options.logDir, `task-${taskId}.log`),
      });
    } catch (error) {
      // A launcher that throws at once started nothing: the next pass places the task again.
      this.tasks.delete(taskId);
      throw error;
    }
    const launching = started
      .then(
        (handle) => this.running(task, handle),
        (error: Error) => {
          this.tasks.delete(taskId);
          this.events.publish({
            type: "task.stopped",
            taskId,
            containerInstanceId,
            az,
            pid: 0,
            reason: `failed to start: ${error.message}`,
            expected: false,
          });
        },
      )
      .catch((error: unknown) => this.guard.report(error, NEXT_PASS))
      .finally(() => this.launches.delete(launching));
    this.launches.add(launching);
  }

  private running(task: Task, handle: InstanceHandle): void {
    task.handle = handle;
    task.startedAt = Date.now();
    void handle.exited.then(
      this.guard.wrap((exit: { code: number | null; signal: string | null }) => {
        this.tasks.delete(task.taskId);
        this.targetGroup.remove(task.taskId);
        this.events.publish({
          type: "task.stopped",
          taskId: task.taskId,
          containerInstanceId: task.containerInstanceId,
          az: task.az,
          pid: handle.pid,
          reason: task.stopping
            ? (task.stopReason ?? "stopped by the scheduler")
            : `essential container exited (${exit.signal ?? `code ${exit.code}`})`,
          expected: task.stopping,
        });
        this.guarded();
      }, NEXT_PASS),
    );
    if (this.stopped || task.stopping) {
      handle.terminate(this.stopped ? "SIGKILL" : "SIGTERM");
      return;
    }
    this.events.publish({
      type: "task.running",
      taskId: task.taskId,
      containerInstanceId: task.containerInstanceId,
      az: task.az,
      pid: handle.pid,
      port: handle.port,
    });
    this.targetGroup.register({ instanceId: task.taskId, az: task.az, host: handle.host, port: handle.port });
  }

  /** Drains the task out of the target group, then SIGTERM (SIGKILL if it does not exit). */
  private stopTask(task: Task, reason: string): void {
    task.stopping = true;
    task.stopReason = reason;
    const handle = task.handle;
    if (!handle) return;
    void this.targetGroup
      .deregister(task.taskId)
      .catch((error: unknown) => this.guard.report(error, "stopped without waiting for its draining"))
      .then(
        this.guard.wrap(() => {
          handle.terminate("SIGTERM");
          const timer = setTimeout(() => handle.terminate("SIGKILL"), 10_000);
          timer.unref();
          void handle.exited.then(() => clearTimeout(timer));
        }, NEXT_PASS),
      );
  }

  /** Its container instance is gone: every task on it dies at once. */
  containerInstanceLost(containerInstanceId: string): string[] {
    const lost = [...this.tasks.values()].filter((t) => t.containerInstanceId === containerInstanceId);
    for (const task of lost) {
      task.handle?.terminate("SIGKILL");
      // One still starting never comes up there.
      if (!task.handle) task.stopping = true;
    }
    return lost.map((t) => t.taskId);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.guard.stop();
    this.unsubscribe();
    await Promise.allSettled([...this.launches]);
    await Promise.all(
      [...this.tasks.values()].map(async (t) => {
        if (!t.handle?.alive) return;
        t.handle.terminate("SIGTERM");
        const timer = setTimeout(() => t.handle?.terminate("SIGKILL"), 10_000);
        timer.unref();
        await t.handle.exited;
        clearTimeout(timer);
      }),
    );
  }
}
