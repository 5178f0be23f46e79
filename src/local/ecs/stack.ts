import path from "node:path";
import { StayupError } from "../../shared/errors.ts";
import { sleep } from "../../shared/net.ts";
import { derive } from "../../stack/derived.ts";
import type { ResolvedStack } from "../../stack/schema.ts";
import { placementSteps, registeredCapacity } from "../../stack/ecs-capacity.ts";
import type { RedisEndpoint } from "../redis/controller.ts";
import type { TimedStackEvent } from "../events/bus.ts";
import { LocalStack, type LocalStackOptions, REGISTRY_RETRY, type StackStatus } from "../runtime.ts";
import { ProcessLauncher } from "../instance-group/process-launcher.ts";
import { ScalingController } from "../scaling/controller.ts";
import { CapacityProviderController } from "./capacity-provider.ts";
import { ContainerInstanceGroup } from "./container-instances.ts";
import { freeCapacity } from "./decide.ts";
import { EcsServiceController } from "./service.ts";
import type { EcsStatus } from "./status.ts";

/**
 * The region's web group runs no web process in this topology: the service's tasks are the
 * processes, on container instances; one region (the secondary's failover is seed 002's, on
 * the load-balanced topology).
 */
function withoutWebGroup(stack: ResolvedStack): ResolvedStack {
  return {
    ...stack,
    regions: { primary: stack.regions.primary },
    web: { ...stack.web, capacity: { min: 0, desired: 0, max: 0 } },
  };
}

/** Seed 004 locally: the load balancer and target group of a region, ECS behind them. */
export class EcsLocalStack extends LocalStack {
  readonly containerInstances: ContainerInstanceGroup;
  readonly service: EcsServiceController;
  readonly capacityProvider: CapacityProviderController;
  /** Service auto scaling: CPU target tracking on the tasks, as on AWS (autoScaleTaskCount). */
  readonly taskScaling: ScalingController;
  private readonly description: ResolvedStack;

  constructor(options: LocalStackOptions) {
    super({ ...options, stack: withoutWebGroup(options.stack) });
    const stack = options.stack;
    this.description = stack;
    const region = stack.regions.primary.name;
    const events = this.events.scoped(region);
    const registered = registeredCapacity(stack.web.instanceTypes[0] ?? "");
    if (!registered) {
      throw new StayupError(
        `environments.${stack.environment}.web.instanceTypes[0] has no known container-instance size`,
        "use an instance type listed in src/stack/ecs.ts",
      );
    }
    const derived = derive(stack);
    this.containerInstances = new ContainerInstanceGroup(
      {
        name: `${stack.name}-${stack.environment}-ecs-${region}`,
        region,
        availabilityZones: stack.regions.primary.availabilityZones,
        capacity: stack.web.capacity,
        registered,
        logDir: path.join(options.stateDir, "logs", region),
        onLost: (id) => this.service.containerInstanceLost(id),
      },
      events,
    );
    this.service = new EcsServiceController(
      {
        region,
        desired: stack.ecs.tasks.desired,
        min: stack.ecs.tasks.min,
        max: stack.ecs.tasks.max,
        task: stack.ecs.task,
        placement: placementSteps(stack.ecs.placement),
        containerInstances: () => this.containerInstances.active(),
        artifact: () => this.primary.group.options.serviceEntry,
        // The version the runtime computed at start (bundle, settings and the service's folder).
        version: () => this.primary.group.version,
        environment: () => ({
          ...(this.redis as RedisEndpoint).environment(),
          LOG_LEVEL: "info",
          ...this.loadSecretEnvironment(),
        }),
        logDir: path.join(options.stateDir, "logs", region),
        healthCheckGracePeriodMs: derived.healthCheckGracePeriod.localMs,
        unhealthyReplacementMs: derived.replacementDelayMs,
      },
      new ProcessLauncher({ service: stack.webService.start }),
      this.primary.targetGroup,
      events,
    );
    // The same target tracking as the instance group's (its settings, scaleOnCpuUtilization on
    // AWS), on the service's desired count: more tasks, placed by the strategy; the capacity
    // provider adds container instances when they do not fit.
    this.taskScaling = new ScalingController(
      this.service,
      {
        targetCpuPercent: stack.scaling.targetCpuPercent,
        ...stack.scaling.local,
        warmupMs: derived.instanceWarmup.localMs,
      },
      events,
    );
    this.capacityProvider = new CapacityProviderController(
      this.containerInstances.group,
      this.service,
      stack.ecs.clusterTargetUtilizationPercent,
      events,
    );
    // Tasks are processes this stack started: recorded like instances, for `stayup down` after a crash.
    this.events.subscribe(
      this.registryGuard.wrap((e: TimedStackEvent) => {
        if (e.type === "task.running") {
          this.processes.add({ pid: e.pid, kind: "instance", name: e.taskId, port: e.port });
        } else if (e.type === "task.stopped" && e.pid > 0) this.processes.remove(e.pid);
      }, REGISTRY_RETRY),
    );
  }

  override async start(readyTimeoutMs = 60_000): Promise<void> {
    await super.start(readyTimeoutMs);
    try {
      this.containerInstances.group.start();
      const deadline = Date.now() + readyTimeoutMs;
      while (this.containerInstances.active().length < this.containerInstances.group.capacity.desired) {
        if (Date.now() > deadline) throw new StayupError("the container instances did not register");
        await sleep(20);
      }
      this.service.start();
      this.capacityProvider.start();
      this.taskScaling.start();
      while (this.healthyTasks() < this.service.desired) {
        if (Date.now() > deadline) {
          throw new StayupError(
            `only ${this.healthyTasks()} of ${this.service.desired} tasks became healthy within ${readyTimeoutMs / 1000} s`,
            `see the task logs in ${path.join(this.options.stateDir, "logs")}`,
          );
        }
        await sleep(50);
      }
    } catch (error) {
      await this.stop("start failed");
      throw error;
    }
  }

  private healthyTasks(): number {
    return [...this.service.tasks.values()].filter((t) => t.health === "healthy" && !t.stopping).length;
  }

  /** Loses one container instance (a drill's fault): every task on it dies with it. */
  loseContainerInstance(containerInstanceId: string): {
    containerInstanceId: string;
    az: string;
    taskIds: string[];
  } {
    const instance = this.containerInstances
      .active()
      .find((c) => c.containerInstanceId === containerInstanceId);
    if (!instance) throw new StayupError(`no active container instance "${containerInstanceId}"`);
    const taskIds = [...this.service.tasks.values()]
      .filter((t) => t.containerInstanceId === containerInstanceId)
      .map((t) => t.taskId);
    this.events.scoped(this.primary.name).publish({
      type: "container-instance.lost",
      containerInstanceId,
      az: instance.az,
      taskIds,
    });
    this.containerInstances.lose(containerInstanceId);
    return { containerInstanceId, az: instance.az, taskIds };
  }

  ecsStatus(): EcsStatus {
    const stack = this.description;
    const tasks = [...this.service.tasks.values()];
    return {
      placement: stack.ecs.placement,
      clusterTargetUtilizationPercent: stack.ecs.clusterTargetUtilizationPercent,
      service: {
        desired: this.service.desired,
        running: tasks.filter((t) => t.handle && !t.stopping).length,
        healthy: this.healthyTasks(),
        unplaced: this.service.unplaced,
      },
      containerInstances: this.service.observe().map((ci) => ({
        id: ci.id,
        az: ci.az,
        registered: { cpuUnits: ci.cpuUnits, memoryMiB: ci.memoryMiB },
        free: freeCapacity(ci),
        tasks: tasks
          .filter((t) => t.containerInstanceId === ci.id)
          .map((t) => ({
            id: t.taskId,
            pid: t.handle?.pid ?? 0,
            port: t.handle?.port ?? 0,
            health: t.health,
          })),
      })),
    };
  }

  /** The stack's status with the tasks as the region's targets (drills read these) and the cluster. */
  override status(): StackStatus {
    const base = super.status();
    const ecs = this.ecsStatus();
    const instances = ecs.containerInstances.flatMap((ci) =>
      ci.tasks.map((t) => {
        const target = this.primary.targetGroup.get(t.id);
        return {
          id: t.id,
          az: ci.az,
          pid: t.pid,
          port: t.port,
          state: t.health === "healthy" ? "running" : "pending",
          health: target?.health ?? "unregistered",
          healthy: target?.health === "healthy",
          cpuPercent: this.taskScaling.cpu.get(t.id),
        };
      }),
    );
    const group = {
      min: this.description.ecs.tasks.min,
      desired: ecs.service.desired,
      max: this.description.ecs.tasks.max,
      inService: instances.filter((i) => i.healthy).length,
      averageCpuPercent: this.taskScaling.lastAverage,
    };
    const regions = base.regions.map((r) => (r.name === base.region ? { ...r, group, instances } : r));
    return { ...base, group, instances, regions, ecs };
  }

  override async stop(reason = "requested"): Promise<void> {
    this.taskScaling.stop();
    this.capacityProvider.stop();
    await this.service.stop();
    await this.containerInstances.group.stop();
    await super.stop(reason);
  }
}
