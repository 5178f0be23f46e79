import path from "node:path";
import { StayupError } from "../shared/errors.ts";
import { assertPortFree } from "../shared/net.ts";
import type { ResolvedStack } from "../stack/index.ts";
import { bundleWebService } from "../web-service/bundle.ts";
import { EventBus } from "./events/bus.ts";
import { InstanceGroupController } from "./instance-group/controller.ts";
import { LoadBalancer } from "./load-balancer/balancer.ts";
import { RedisController, type RedisEndpoint } from "./redis/controller.ts";
import { RedisReplicationController } from "./redis/replication.ts";
import { ScalingController } from "./scaling/controller.ts";
import { TargetGroupController } from "./target-group/controller.ts";

export interface LocalStackOptions {
  stack: ResolvedStack;
  /** Where Redis data, instance logs and the service bundle live (default: ./.stayup). */
  stateDir: string;
  /** Override of loadBalancer.local.port (0: any free port). */
  listenerPort?: number;
  /** Override of redis.localPort (0: any free port). */
  redisPort?: number;
  events?: EventBus;
}

export interface InstanceStatus {
  id: string;
  az: string;
  pid: number;
  port: number;
  state: string;
  health: string;
  healthy: boolean;
  /** Last sampled CPU, percent of one core (undefined while warming up). */
  cpuPercent?: number;
}

export interface StackStatus {
  name: string;
  environment: string;
  region: string;
  listener: string;
  pid: number;
  redis: {
    url: string;
    pid?: number;
    nodes?: { name: string; az: string; port: number; pid?: number; role: string; inSync?: boolean }[];
  };
  group: { min: number; desired: number; max: number; inService: number; averageCpuPercent?: number };
  instances: InstanceStatus[];
}

/** The whole stack on one machine: each controller owns one concern; this only wires them. */
export class LocalStack {
  readonly events: EventBus;
  readonly redis: RedisController | RedisReplicationController;
  readonly targetGroup: TargetGroupController;
  readonly loadBalancer: LoadBalancer;
  group?: InstanceGroupController;
  scaling?: ScalingController;
  private stopped?: Promise<void>;

  constructor(readonly options: LocalStackOptions) {
    const { stack } = options;
    this.events = options.events ?? new EventBus();
    const hc = stack.targetGroup.healthCheck;
    const redisSettings = {
      host: "127.0.0.1",
      port: options.redisPort ?? stack.redis.localPort,
      dataDir: path.join(options.stateDir, "redis", stack.regions.primary.name),
      events: this.events,
    };
    this.redis = stack.redis.multiAz
      ? new RedisReplicationController({
          ...redisSettings,
          availabilityZones: stack.regions.primary.availabilityZones,
        })
      : new RedisController(redisSettings);
    this.targetGroup = new TargetGroupController(
      {
        path: hc.path,
        intervalMs: hc.local.intervalMs,
        timeoutMs: hc.local.timeoutMs,
        healthyThreshold: hc.healthyThreshold,
        unhealthyThreshold: hc.unhealthyThreshold,
      },
      this.events,
    );
    this.loadBalancer = new LoadBalancer(this.targetGroup, this.events, {
      host: stack.loadBalancer.local.host,
      port: options.listenerPort ?? stack.loadBalancer.local.port,
    });
  }

  get listenerPort(): number {
    return this.options.listenerPort ?? this.options.stack.loadBalancer.local.port;
  }

  /** Starts everything; nothing is left running if any step fails. */
  async start(readyTimeoutMs = 30_000): Promise<void> {
    const { stack, stateDir } = this.options;
    // Everything that can be checked is checked before anything starts.
    await assertPortFree(
      stack.loadBalancer.local.host,
      this.listenerPort,
      "load balancer",
      "pass --port with a free port, or change loadBalancer.local.port in stayup.config.ts",
    );
    await this.redis.preflight();
    this.events.publish({
      type: "stack.starting",
      environment: stack.environment,
      region: stack.regions.primary.name,
    });
    try {
      const serviceEntry = await bundleWebService(path.join(stateDir, "build"));
      await this.redis.start();
      await this.loadBalancer.listen();
      this.group = new InstanceGroupController(
        {
          name: `${stack.name}-${stack.environment}-web`,
          region: stack.regions.primary.name,
          availabilityZones: stack.regions.primary.availabilityZones,
          capacity: stack.web.capacity,
          serviceEntry,
          instanceEnvironment: () => ({
            ...(this.redis as RedisEndpoint).environment(),
            LOG_LEVEL: "info",
            STAYUP_LOAD_ENDPOINT: "1",
          }),
          logDir: path.join(stateDir, "logs"),
        },
        this.targetGroup,
        this.events,
      );
      this.group.start();
      await this.waitUntilReady(readyTimeoutMs);
      this.scaling = new ScalingController(
        this.group,
        { targetCpuPercent: stack.scaling.targetCpuPercent, ...stack.scaling.local },
        this.events,
      );
      this.scaling.start();
      this.events.publish({
        type: "stack.ready",
        listener: this.loadBalancer.url,
        healthyTargets: this.targetGroup.inRotation().length,
      });
    } catch (error) {
      await this.stop("start failed");
      throw error;
    }
  }

  private waitUntilReady(timeoutMs: number): Promise<void> {
    const desired = () => this.group?.capacity.desired ?? 0;
    return new Promise((resolve, reject) => {
      const check = () => this.targetGroup.inRotation().length >= desired();
      if (check()) return resolve();
      const timer = setTimeout(() => {
        unsubscribe();
        reject(
          new StayupError(
            `only ${this.targetGroup.inRotation().length} of ${desired()} instances became healthy within ${timeoutMs / 1000} s`,
            `see the instance logs in ${path.join(this.options.stateDir, "logs")}`,
          ),
        );
      }, timeoutMs);
      const unsubscribe = this.events.subscribe(() => {
        if (check()) {
          clearTimeout(timer);
          unsubscribe();
          resolve();
        }
      });
    });
  }

  status(): StackStatus {
    const { stack } = this.options;
    const instances = (this.group?.list() ?? []).map((i) => {
      const target = this.targetGroup.get(i.instanceId);
      return {
        id: i.instanceId,
        az: i.az,
        pid: i.pid,
        port: i.port,
        state: i.state,
        health: target?.health ?? "unregistered",
        healthy: target?.health === "healthy",
        cpuPercent: this.scaling?.cpu.get(i.instanceId),
      };
    });
    return {
      name: stack.name,
      environment: stack.environment,
      region: stack.regions.primary.name,
      listener: this.loadBalancer.url,
      pid: process.pid,
      redis: {
        url: this.redis.url,
        pid: this.redis.pid,
        nodes: this.redis instanceof RedisReplicationController ? this.redis.nodeStatus() : undefined,
      },
      group: {
        ...(this.group?.capacity ?? stack.web.capacity),
        inService: instances.filter((i) => i.healthy).length,
        averageCpuPercent: this.scaling?.lastAverage,
      },
      instances,
    };
  }

  /** Stops in reverse order of start: instances drain, then the listener, then Redis. */
  stop(reason = "requested"): Promise<void> {
    this.stopped ??= (async () => {
      this.events.publish({ type: "stack.stopping", reason });
      this.scaling?.stop();
      await this.group?.stop();
      this.targetGroup.stop();
      await this.loadBalancer.close().catch(() => undefined);
      await this.redis.stop();
      this.events.publish({ type: "stack.stopped" });
    })();
    return this.stopped;
  }
}
