import path from "node:path";
import type { ResolvedStack } from "../stack/index.ts";
import type { EventBus } from "./events/bus.ts";
import { type GroupCapacity, InstanceGroupController } from "./instance-group/controller.ts";
import { LoadBalancer } from "./load-balancer/balancer.ts";
import { ScalingController } from "./scaling/controller.ts";
import { TargetGroupController } from "./target-group/controller.ts";

export interface LocalRegionOptions {
  stack: ResolvedStack;
  name: string;
  role: "primary" | "secondary";
  availabilityZones: string[];
  listener: { host: string; port: number };
  capacity: GroupCapacity;
  serviceEntry: string;
  instanceEnvironment: () => Record<string, string>;
  stateDir: string;
  events: EventBus;
}

/** One region: its target group, load balancer, instance group and scaling policy. */
export class LocalRegion {
  readonly targetGroup: TargetGroupController;
  readonly loadBalancer: LoadBalancer;
  readonly group: InstanceGroupController;
  readonly scaling: ScalingController;
  /** Down on purpose (a region outage drill): nothing runs, nothing is replaced. */
  down = false;

  constructor(readonly options: LocalRegionOptions) {
    const { stack } = options;
    const events = options.events.scoped(options.name);
    const hc = stack.targetGroup.healthCheck;
    this.targetGroup = new TargetGroupController(
      {
        path: hc.path,
        intervalMs: hc.local.intervalMs,
        timeoutMs: hc.local.timeoutMs,
        healthyThreshold: hc.healthyThreshold,
        unhealthyThreshold: hc.unhealthyThreshold,
      },
      events,
    );
    // Shares the listener object: a port chosen at start reaches the load balancer too.
    this.loadBalancer = new LoadBalancer(this.targetGroup, events, options.listener);
    this.group = new InstanceGroupController(
      {
        name: `${stack.name}-${stack.environment}-web-${options.name}`,
        region: options.name,
        availabilityZones: options.availabilityZones,
        capacity: options.capacity,
        serviceEntry: options.serviceEntry,
        instanceEnvironment: options.instanceEnvironment,
        logDir: path.join(options.stateDir, "logs", options.name),
      },
      this.targetGroup,
      events,
    );
    this.scaling = new ScalingController(
      this.group,
      { targetCpuPercent: stack.scaling.targetCpuPercent, ...stack.scaling.local },
      events,
    );
  }

  get name(): string {
    return this.options.name;
  }

  async start(): Promise<void> {
    await this.loadBalancer.listen();
    this.group.start();
    this.scaling.start();
  }

  /** A whole-region outage: the load balancer stops answering and every instance dies at once. */
  async fail(): Promise<void> {
    this.down = true;
    this.scaling.stop();
    await this.loadBalancer.close();
    await this.group.kill();
  }

  /** The region comes back: listener up, the group relaunches its desired capacity. */
  async restore(): Promise<void> {
    this.down = false;
    await this.loadBalancer.listen();
    this.group.resume();
    this.scaling.start();
  }

  async stop(): Promise<void> {
    this.scaling.stop();
    await this.group.stop();
    this.targetGroup.stop();
    await this.loadBalancer.close().catch(() => undefined);
  }
}
