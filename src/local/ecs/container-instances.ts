import { ControllerGuard } from "../controller-guard.ts";
import { EventBus, type EventPublisher, type TimedStackEvent } from "../events/bus.ts";
import { type GroupCapacity, InstanceGroupController } from "../instance-group/controller.ts";
import type { InstanceExit, InstanceHandle, Launcher, LaunchSpec } from "../instance-group/launcher.ts";

/**
 * A container instance locally: capacity that tasks are placed on, not a process of its own (the
 * tasks are the processes). Losing it is its handle stopping; the service then loses its tasks.
 */
class ContainerInstanceHandle implements InstanceHandle {
  readonly host = "127.0.0.1";
  readonly port = 0;
  readonly pid = 0;
  readonly exited: Promise<InstanceExit>;
  private settle!: (exit: InstanceExit) => void;
  private running = true;
  constructor(
    readonly instanceId: string,
    readonly az: string,
  ) {
    this.exited = new Promise((resolve) => (this.settle = resolve));
  }
  get alive(): boolean {
    return this.running;
  }
  terminate(signal: NodeJS.Signals): void {
    if (!this.running) return;
    this.running = false;
    this.settle({ code: null, signal });
  }
}

/** The seam's implementation for container instances: registered at once, at the type's capacity. */
export class ContainerInstanceLauncher implements Launcher {
  readonly handles = new Map<string, ContainerInstanceHandle>();
  launch(spec: LaunchSpec): Promise<InstanceHandle> {
    const handle = new ContainerInstanceHandle(spec.instanceId, spec.az);
    this.handles.set(spec.instanceId, handle);
    void handle.exited.then(() => this.handles.delete(spec.instanceId));
    return Promise.resolve(handle);
  }
}

export interface ContainerInstance {
  containerInstanceId: string;
  az: string;
  cpuUnits: number;
  memoryMiB: number;
}

/**
 * The cluster's Auto Scaling group: today's instance group (its decisions, replacement rules and
 * seam) over container instances. It runs on a bus of its own, so its instance.* events never mix
 * with the tasks' target events; what others need is republished as container-instance.*.
 */
export class ContainerInstanceGroup {
  readonly group: InstanceGroupController;
  readonly launcher = new ContainerInstanceLauncher();
  private readonly bus = new EventBus(200);

  constructor(
    options: {
      name: string;
      region: string;
      availabilityZones: string[];
      capacity: GroupCapacity;
      /** What ECS registers per container instance (the instance type's, less the agent's share). */
      registered: { cpuUnits: number; memoryMiB: number };
      logDir: string;
      onLost: (containerInstanceId: string) => void;
    },
    events: EventPublisher,
  ) {
    const bus = this.bus;
    this.group = new InstanceGroupController(
      {
        name: options.name,
        region: options.region,
        availabilityZones: options.availabilityZones,
        capacity: options.capacity,
        serviceEntry: "",
        instanceEnvironment: () => ({}),
        logDir: options.logDir,
        launcher: this.launcher,
        // Its agent registers at once: ACTIVE is the only health a container instance has here.
        policy: { healthCheckGracePeriodMs: 60_000 },
      },
      {
        register: (t) => bus.publish({ type: "target.healthy", instanceId: t.instanceId, az: t.az }),
        deregister: () => Promise.resolve(),
        remove: () => undefined,
      },
      bus,
    );
    // The group's own failures arrive as its controller.error events (forwarded below); this
    // handler's are the container instances'.
    const guard = new ControllerGuard({ controller: "container-instances", events });
    bus.subscribe(
      guard.wrap((e: TimedStackEvent) => {
        if (e.type === "instance.launched") {
          events.publish({
            type: "container-instance.registered",
            containerInstanceId: e.instanceId,
            az: e.az,
            ...options.registered,
          });
        } else if (e.type === "instance.terminated") {
          if (!e.expected) options.onLost(e.instanceId);
          events.publish({
            type: "container-instance.deregistered",
            containerInstanceId: e.instanceId,
            az: e.az,
            expected: e.expected,
          });
        } else if (e.type === "controller.error") {
          events.publish(e);
        }
      }, "the next event is handled as usual"),
    );
    this.registered = options.registered;
  }

  private readonly registered: { cpuUnits: number; memoryMiB: number };

  /** Container instances tasks can be placed on (registered, not being terminated). */
  active(): ContainerInstance[] {
    return this.group
      .list()
      .filter((i) => i.state !== "terminating" && this.launcher.handles.get(i.instanceId)?.alive)
      .map((i) => ({ containerInstanceId: i.instanceId, az: i.az, ...this.registered }));
  }

  /** Loses one container instance at once (as an instance failure would). */
  lose(containerInstanceId: string): boolean {
    const handle = this.launcher.handles.get(containerInstanceId);
    if (!handle?.alive) return false;
    handle.terminate("SIGKILL");
    return true;
  }
}
