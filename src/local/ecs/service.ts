import { randomBytes } from "node:crypto";
import path from "node:path";
import type { PlacementStep } from "../../stack/ecs-capacity.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher, TimedStackEvent } from "../events/bus.ts";
import type { GroupCapacity, Instance, TargetRegistry } from "../instance-group/controller.ts";
import type { InstanceHandle, Launcher } from "../instance-group/launcher.ts";
import type { Slowdown } from "../instance-group/replacement.ts";
import type { ContainerInstance } from "./container-instances.ts";
import {
  type ContainerInstanceState,
  decideService,
  type ObservedTask,
  placeTask,
  type ServiceState,
  type TaskSize,
} from "./decide.ts";

export interface ServiceOptions {
  region: string;
  desired: number;
  /** The bounds service auto scaling keeps the desired count in (default: desired). */
  min?: number;
  max?: number;
  task: TaskSize;
  placement: PlacementStep[];
  /** The container instances tasks may be placed on, as observed now. */
  containerInstances: () => ContainerInstance[];
  artifact: () => string;
  /** The version tasks are launched with (the service's bundle, settings and folder hashed). */
  version?: () => string;
  environment: () => Record<string, string>;
  logDir: string;
  /** A task never healthy this long after it started is replaced (ALB health). */
  healthCheckGracePeriodMs: number;
  /** A task unhealthy this long while another serves is replaced (see decideService). */
  unhealthyReplacementMs: number;
  /** The clock decisions are taken at (a fake one in tests). */
  now?: () => number;
}

export interface Task {
  taskId: string;
  containerInstanceId: string;
  az: string;
  startedAt: number;
  handle?: InstanceHandle;
  health: "initial" | "healthy" | "unhealthy";
  unhealthySince?: number;
  healthySince?: number;
  everHealthy: boolean;
  /** The task this one was started to replace, while that one still runs. */
  replaces?: string;
  stopping: boolean;
  stopReason?: string;
  /** Kept unhealthy on purpose; published once per reason. */
  heldReason?: string;
}

const NEXT_PASS = "retried at the next reconcile pass";

const newTaskId = () => randomBytes(16).toString("hex");

/**
 * The ECS service scheduler: keeps the desired task count, places each task by the environment's
 * strategy (decide.ts), registers it in the target group, and replaces a task that stops, or that
 * decideService says is broken (not one that is only slow while every task is). Tasks it cannot
 * place are counted for the capacity provider. Service auto scaling sets its desired count
 * (`capacity`, `setDesiredCapacity`, `list`: what the scaling controller needs of a group).
 */
export class EcsServiceController {
  readonly tasks = new Map<string, Task>();
  readonly capacity: GroupCapacity;
  /** The target group's group-wide slowdown (target.slowdown events). */
  private slowdown: Slowdown = { slow: false };
  private readonly now: () => number;
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
    this.now = options.now ?? Date.now;
    this.capacity = {
      min: options.min ?? options.desired,
      desired: options.desired,
      max: options.max ?? options.desired,
    };
    this.unsubscribe = events.subscribe(
      this.guard.wrap((e: TimedStackEvent) => {
        if (e.type === "target.slowdown") {
          this.slowdown = e.slow ? { slow: true } : { slow: false, endedAt: this.now() };
          return;
        }
        if (e.type !== "target.healthy" && e.type !== "target.unhealthy") return;
        const task = this.tasks.get(e.instanceId);
        if (!task || task.stopping) return;
        if (e.type === "target.healthy") {
          task.health = "healthy";
          task.everHealthy = true;
          task.unhealthySince = undefined;
          task.healthySince ??= this.now();
          task.heldReason = undefined;
        } else {
          task.health = "unhealthy";
          task.unhealthySince ??= this.now();
          task.healthySince = undefined;
        }
      }, NEXT_PASS),
    );
  }

  get desired(): number {
    return this.capacity.desired;
  }

  /** Service auto scaling's desired count, within min and max; the next pass acts on it. */
  setDesiredCapacity(desired: number, reason: string): void {
    const bounded = Math.max(this.capacity.min, Math.min(this.capacity.max, desired));
    if (bounded === this.capacity.desired) return;
    this.capacity.desired = bounded;
    this.events.publish({ type: "service.desired-count-changed", ...this.capacity, reason });
    this.guarded();
  }

  /** The tasks that listen, as the scaling controller samples them (a task is its process). */
  list(): Instance[] {
    return [...this.tasks.values()].flatMap((t) =>
      t.handle
        ? [
            {
              instanceId: t.taskId,
              az: t.az,
              pid: t.handle.pid,
              port: t.handle.port,
              state: t.stopping ? "terminating" : t.everHealthy ? "in-service" : "pending",
              launchedAt: t.startedAt,
              eventLoopUtilization: t.handle.eventLoopUtilization,
            } satisfies Instance,
          ]
        : [],
    );
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

  /** What decideService sees: every task, in start order. */
  observeService(): ServiceState {
    return {
      desired: this.capacity.desired,
      tasks: [...this.tasks.values()].map((t): ObservedTask => ({
        taskId: t.taskId,
        az: t.az,
        lifecycle: t.stopping ? "terminating" : t.handle ? "running" : "launching",
        health: t.health,
        startedAt: t.startedAt,
        unhealthySince: t.unhealthySince,
        healthySince: t.healthySince,
        everHealthy: t.everHealthy,
        replaces: t.replaces !== undefined && this.tasks.has(t.replaces) ? t.replaces : undefined,
      })),
      slowdown: { ...this.slowdown },
    };
  }

  /** One pass: observe, decide (decideService), act: stop, start (placed by the strategy), report held. */
  reconcile(): void {
    if (this.stopped) return;
    const decision = decideService(
      this.observeService(),
      {
        healthCheckGracePeriodMs: this.options.healthCheckGracePeriodMs,
        replacementDelayMs: this.options.unhealthyReplacementMs,
      },
      this.now(),
    );
    for (const { taskId, reason } of decision.held) {
      const task = this.tasks.get(taskId);
      if (!task || task.heldReason === reason) continue;
      task.heldReason = reason;
      this.events.publish({ type: "task.replacement-held", taskId, az: task.az, reason });
    }
    for (const { taskId, reason } of decision.stop) {
      const task = this.tasks.get(taskId);
      if (task && !task.stopping) this.stopTask(task, reason);
    }
    let unplaced = 0;
    for (const start of decision.start) {
      const containerInstanceId = placeTask(this.observe(), this.options.task, this.options.placement);
      if (!containerInstanceId) {
        unplaced++;
        continue;
      }
      this.launch(containerInstanceId, start.replaces);
    }
    if (unplaced > 0 && unplaced !== this.unplaced) {
      this.events.publish({
        type: "task.unplaced",
        reason: `${unplaced} task(s) do not fit on any container instance; waiting for the capacity provider`,
      });
    }
    this.unplaced = unplaced;
  }

  private launch(containerInstanceId: string, replaces: string | undefined): void {
    const az =
      this.options.containerInstances().find((c) => c.containerInstanceId === containerInstanceId)?.az ?? "";
    const taskId = newTaskId();
    const task: Task = {
      taskId,
      containerInstanceId,
      az,
      startedAt: this.now(),
      health: "initial",
      everHealthy: false,
      replaces,
      stopping: false,
    };
    this.tasks.set(taskId, task);
    const placement = this.options.placement.map((s) => `${s.type}(${s.field})`).join(", ");
    this.events.publish({
      type: "task.placed",
      taskId,
      containerInstanceId,
      az,
      placement,
      ...(replaces === undefined ? {} : { replaces }),
    });
    let started: Promise<InstanceHandle>;
    try {
      started = this.launcher.launch({
        instanceId: taskId,
        az,
        region: this.options.region,
        version: this.options.version?.() || "1",
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
    task.startedAt = this.now();
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
