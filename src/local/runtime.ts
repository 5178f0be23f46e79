import { randomBytes } from "node:crypto";
import path from "node:path";
import { StayupError } from "../shared/errors.ts";
import { assertPortFree, assertPortsFree, findFreePort } from "../shared/net.ts";
import { ensurePrivateDir } from "../shared/private-file.ts";
import { derive, serviceTraffic, type ServiceTraffic } from "../stack/derived.ts";
import type { ResolvedStack, Topology } from "../stack/schema.ts";
import { redisNodeCount, redisReplicasToAcknowledge, redisWriteHoldMs } from "../stack/redis-durability.ts";
import { LOCAL_SENTINEL_TIMING } from "../stack/region-failover-timing.ts";
import { bundleWebService } from "../web-service/bundle.ts";
import { serviceFolderOf, serviceVersion } from "../web-service/version.ts";
import type { EcsStatus } from "./ecs/status.ts";
import { ControllerGuard } from "./controller-guard.ts";
import { EventBus, type TimedStackEvent } from "./events/bus.ts";
import { FailoverDnsServer } from "./dns/server.ts";
import { FailoverController } from "./failover/controller.ts";
import { FaultRegistry, type FaultInForce } from "./faults/registry.ts";
import type { InstanceGroupController } from "./instance-group/controller.ts";
import { assertServiceStartable } from "./instance-group/service-command.ts";
import type { Listener } from "./load-balancer/balancer.ts";
import { Notifier } from "./notifications/notifier.ts";
import { RedisController, type RedisEndpoint } from "./redis/controller.ts";
import { CrossRegionReplication, type CrossRegionStatus } from "./redis/cross-region.ts";
import { crossRegionRedis } from "../stack/cross-region-redis.ts";
import { assertRedisInstalled, localRedisPassword } from "./redis/process.ts";
import { RedisReplicationController } from "./redis/replication.ts";
import { ProcessRegistry } from "./processes.ts";
import { LocalRegion } from "./region.ts";
import type { ScalingController } from "./scaling/controller.ts";
import type { TargetGroupController } from "./target-group/controller.ts";

export interface LocalStackOptions {
  stack: ResolvedStack;
  /** Where Redis data, instance logs and the service bundle live (default: ./.stayup). */
  stateDir: string;
  /** Override of loadBalancer.local.port (0: any free port). */
  listenerPort?: number;
  /** Override of redis.localPort (0: any free port). */
  redisPort?: number;
  /** Override of dns.local.port (0: any free port). */
  dnsPort?: number;
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
  /** The service version it runs (bundle and instance settings hashed; see rolling-deploy). */
  version?: string;
}

export interface StackStatus {
  name: string;
  environment: string;
  /** How the web service runs (the description's topology, or `--topology`'s): drills check it. */
  topology: Topology;
  /** Which service runs (the counter or the user's command) and where drills send traffic. */
  service?: ServiceTraffic;
  region: string;
  listener: string;
  pid: number;
  /** The version the primary region's instances run, or are being rolled to (see rolling-deploy). */
  version?: string;
  redis: {
    url: string;
    pid?: number;
    nodes?: { name: string; az: string; port: number; pid?: number; role: string; inSync?: boolean }[];
    /** With a secondary region: its own Redis group, and what crosses between the two. */
    secondary?: {
      url: string;
      nodes?: { name: string; az: string; port: number; pid?: number; role: string; inSync?: boolean }[];
    };
    crossRegion?: CrossRegionStatus;
  };
  group: { min: number; desired: number; max: number; inService: number; averageCpuPercent?: number };
  instances: InstanceStatus[];
  /** Every region; the top-level group and instances are the primary's. */
  regions: RegionStatus[];
  dns?: {
    name: string;
    server: string;
    answer: string;
    primaryHealthy: boolean;
    /** Only with a health check on the SECONDARY record (dns.healthCheck.checkedRecords "both"). */
    secondaryHealthy?: boolean;
    failedOver: boolean;
    /** The region health check's failed checks × interval, and the in-region budget it exceeds. */
    regionDetectionMs: number;
    inRegionBudgetMs: number;
    ttlSeconds: number;
  };
  /** The single-instance topology: its stable address and data volume (see src/local/single-instance). */
  singleInstance?: {
    address: string;
    associatedWith?: string;
    volume: { volumeId: string; dir: string; attachedTo?: string };
  };
  /** Topology "ecs": the cluster's container instances with their tasks and free capacity. */
  ecs?: EcsStatus;
  /** The live dashboard's URL (with the token that opens it), set by the control plane. */
  dashboard?: string;
  /** Faults in force (set by the control plane), each with the command that clears it. */
  faults?: FaultInForce[];
}

export interface RegionStatus {
  name: string;
  role: "primary" | "secondary";
  listener: string;
  down: boolean;
  /** The region's zones, and whether an AZ outage has taken each down. */
  availabilityZones: { name: string; impaired: boolean }[];
  group: { min: number; desired: number; max: number; inService: number; averageCpuPercent?: number };
  instances: InstanceStatus[];
  /** The version the region's group runs, or is being rolled to (a roll's rollback sets it back). */
  version?: string;
}

/** The registry keeps every process in memory: a failed write is made good by the next one. */
export const REGISTRY_RETRY =
  "processes.json is written again, whole, at the next process started or stopped";

/** The whole stack on one machine: each controller owns one concern; this only wires them. */
export class LocalStack {
  readonly events: EventBus;
  /** Faults in force, with what restores each (drills inject them through the control plane). */
  readonly faults: FaultRegistry;
  /** Every process this stack starts, in `<state>/processes.json`. */
  readonly processes: ProcessRegistry;
  /** Recording processes from their events is a controller like the others: a failure is an event. */
  protected readonly registryGuard: ControllerGuard;
  /** The primary region's Redis group. */
  readonly redis: RedisController | RedisReplicationController;
  /** The secondary region's own Redis group (each region has its own, as on AWS). */
  readonly secondaryRedis?: RedisController | RedisReplicationController;
  /** What of Redis crosses regions (`redis.crossRegion`): the secondary's copy and its promotion. */
  readonly crossRegion?: CrossRegionReplication;
  readonly primary: LocalRegion;
  readonly secondary?: LocalRegion;
  readonly failover?: FailoverController;
  dns?: FailoverDnsServer;
  private stopped?: Promise<void>;
  private serviceEntry = "";
  /** What a load drill sends for an instance to serve GET /load (see web-service/load-secret.ts). */
  readonly loadSecret = randomBytes(32).toString("base64url");

  /**
   * The load secret in an instance's environment: the built-in counter's only (its /load is what
   * the load drills use); the user's own service has no /load, and gets no secret it has no use for.
   */
  protected loadSecretEnvironment(): { STAYUP_LOAD_SECRET?: string } {
    return this.options.stack.webService.start ? {} : { STAYUP_LOAD_SECRET: this.loadSecret };
  }

  constructor(readonly options: LocalStackOptions) {
    const { stack } = options;
    this.events = options.events ?? new EventBus();
    this.faults = new FaultRegistry(this.events);
    // The state folder holds the control token, the Redis password, logs: the user's alone.
    ensurePrivateDir(options.stateDir);
    this.processes = new ProcessRegistry(options.stateDir);
    // Instances are recorded from their events: the group needs no knowledge of the registry.
    this.registryGuard = new ControllerGuard({ controller: "process-registry", events: this.events });
    this.events.subscribe(
      this.registryGuard.wrap((e: TimedStackEvent) => {
        if (e.type === "instance.launched") {
          this.processes.add({ pid: e.pid, kind: "instance", name: e.instanceId, port: e.port });
        } else if (e.type === "instance.terminated") this.processes.remove(e.pid);
      }, REGISTRY_RETRY),
    );
    const password = localRedisPassword(options.stateDir);
    const redisGroup = (
      region: { name: string; availabilityZones: string[] },
      port: number,
      events: LocalStack["events"] | ReturnType<EventBus["scoped"]>,
    ) => {
      const settings = {
        host: "127.0.0.1",
        port,
        dataDir: path.join(options.stateDir, "redis", region.name),
        events,
        password,
        processes: this.processes,
      };
      return stack.redis.multiAz
        ? new RedisReplicationController({
            ...settings,
            availabilityZones: region.availabilityZones.slice(0, redisNodeCount(stack)),
            replicasToAcknowledge: redisReplicasToAcknowledge(stack),
            writeHoldMs: redisWriteHoldMs(stack, "local"),
            // The in-region recovery budget (region-failover-timing.ts) is computed from these.
            ...LOCAL_SENTINEL_TIMING,
          })
        : new RedisController(settings);
    };
    this.redis = redisGroup(stack.regions.primary, options.redisPort ?? stack.redis.localPort, this.events);
    const secondaryRegion = stack.regions.secondary;
    if (secondaryRegion) {
      // Its own group on free ports, its events marked with its region.
      this.secondaryRedis = redisGroup(secondaryRegion, 0, this.events.scoped(secondaryRegion.name));
      this.crossRegion = new CrossRegionReplication({
        mode: crossRegionRedis(stack),
        primary: { name: stack.regions.primary.name, redis: this.redis },
        secondary: { name: secondaryRegion.name, redis: this.secondaryRedis },
        password,
        events: this.events,
      });
    }
    const common = {
      stack,
      serviceEntry: "",
      stateDir: options.stateDir,
      events: this.events,
    };
    const environmentOf = (redis: RedisEndpoint) => () => ({
      ...redis.environment(),
      LOG_LEVEL: "info",
      ...this.loadSecretEnvironment(),
    });
    const regionRedis = (name: string) =>
      this.crossRegion && {
        lost: () => this.crossRegion?.regionLost(name),
        back: async () => this.crossRegion?.regionBack(name),
      };
    this.primary = new LocalRegion({
      ...common,
      name: stack.regions.primary.name,
      role: "primary",
      instanceEnvironment: environmentOf(this.redis),
      redis: regionRedis(stack.regions.primary.name),
      availabilityZones: stack.regions.primary.availabilityZones,
      listener: { host: stack.loadBalancer.local.host, port: this.listenerPort },
      capacity: stack.web.capacity,
    });
    const secondary = stack.regions.secondary;
    if (secondary) {
      this.secondary = new LocalRegion({
        ...common,
        name: secondary.name,
        role: "secondary",
        instanceEnvironment: environmentOf(this.secondaryRedis ?? this.redis),
        redis: regionRedis(secondary.name),
        availabilityZones: secondary.availabilityZones,
        listener: { host: secondary.localHost, port: this.listenerPort },
        capacity: derive(stack).secondaryStandby,
      });
      if (stack.dns) {
        // Built now (so its settings can be read), started once both regions are ready.
        this.failover = new FailoverController({
          dns: stack.dns,
          primary: this.primary,
          secondary: this.secondary,
          derived: derive(stack),
          events: this.events,
          notifier: new Notifier(stack, this.events),
          crossRegion: this.crossRegion,
        });
      }
    }
  }

  // The primary region's pieces, by their usual names.
  get targetGroup(): TargetGroupController {
    return this.primary.targetGroup;
  }
  get loadBalancer(): Listener {
    return this.primary.loadBalancer;
  }
  get group(): InstanceGroupController {
    return this.primary.group;
  }
  get scaling(): ScalingController {
    return this.primary.scaling;
  }

  get listenerPort(): number {
    return (
      this.primary?.options.listener.port ??
      this.options.listenerPort ??
      this.options.stack.loadBalancer.local.port
    );
  }

  region(name: string): LocalRegion | undefined {
    return [this.primary, this.secondary].find((r) => r?.name === name);
  }

  /**
   * A port free on the primary's host and, with a secondary region, on its host too: the kernel's
   * free port on 127.0.0.1 may be held on 127.0.0.2 (another stack whose primary region is down).
   */
  private async freePortOnBothHosts(): Promise<number> {
    const primaryHost = this.options.stack.loadBalancer.local.host;
    const secondaryHost = this.secondary?.options.listener.host;
    for (let attempt = 1; ; attempt++) {
      const port = await findFreePort(primaryHost);
      if (!secondaryHost) return port;
      try {
        await assertPortFree(secondaryHost, port, "secondary region's load balancer", "");
        return port;
      } catch (error) {
        if (attempt >= 20) throw error;
      }
    }
  }

  /**
   * Starts everything; nothing is left running if any step fails. `readyTimeoutMs`: as ECS's
   * (ecs/stack.ts); 30 s was too short for two instances on a loaded 2-core machine (load 35).
   */
  async start(readyTimeoutMs = 60_000): Promise<void> {
    const { stack, stateDir } = this.options;
    // A port to pick is picked once the Redis groups hold theirs: picked earlier, a free port can
    // be handed to a Redis node or Sentinel before the load balancer binds it.
    const pickListenerPort = this.listenerPort === 0;
    // Everything that can be checked is checked before anything starts, every port at once.
    const listener = { option: "--port", setting: "loadBalancer.local.port" };
    assertRedisInstalled();
    assertServiceStartable(stack.webService.start);
    await assertPortsFree([
      ...(pickListenerPort
        ? []
        : [
            {
              ...listener,
              check: () =>
                assertPortFree(stack.loadBalancer.local.host, this.listenerPort, "load balancer", ""),
            },
            ...(this.secondary
              ? [
                  {
                    ...listener,
                    check: () =>
                      assertPortFree(
                        this.secondary?.options.listener.host ?? "",
                        this.listenerPort,
                        "secondary region's load balancer",
                        "",
                      ),
                  },
                ]
              : []),
          ]),
      {
        option: "--redis-port",
        setting: "redis.localPort",
        check: async () => {
          await this.redis.preflight();
          await this.secondaryRedis?.preflight();
        },
      },
      ...(stack.dns && this.secondary
        ? [
            {
              option: "--dns-port",
              setting: "dns.local.port",
              check: () => {
                this.dns = new FailoverDnsServer(stack.dns as NonNullable<typeof stack.dns>, this.events);
                return this.dns.preflight(this.options.dnsPort);
              },
            },
          ]
        : []),
    ]);
    this.events.publish({
      type: "stack.starting",
      environment: stack.environment,
      region: stack.regions.primary.name,
    });
    try {
      this.serviceEntry = await bundleWebService(path.join(stateDir, "build"));
      for (const region of [this.primary, this.secondary]) {
        if (region) region.group.serviceEntry = this.serviceEntry;
      }
      await this.redis.start();
      if (this.secondaryRedis) {
        // With a cross-region replica the secondary's group starts as a follower of the primary's.
        if (this.crossRegion?.options.mode === "replica") {
          this.secondaryRedis.following = { host: this.redis.host, port: this.redis.headPort };
        }
        await this.secondaryRedis.start();
        this.crossRegion?.start();
      }
      // The version instances launch with: bundle and instance settings hashed (see rolling-deploy).
      for (const region of [this.primary, this.secondary]) {
        if (region)
          region.group.version = serviceVersion(
            this.serviceEntry,
            region.group.options.instanceEnvironment(),
            serviceFolderOf(stack.webService.start, stateDir),
          );
      }
      if (pickListenerPort) {
        // Both regions listen on one port (DNS switches the address, not the port): pick it once.
        const port = await this.freePortOnBothHosts();
        this.primary.options.listener.port = port;
        if (this.secondary) this.secondary.options.listener.port = port;
      }
      await this.primary.start();
      await this.secondary?.start();
      await this.waitUntilReady(readyTimeoutMs);
      if (this.dns && this.failover) {
        await this.dns.listen(this.options.dnsPort, () => this.failover?.answer());
        this.failover.start();
      }
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
    const regions = [this.primary, this.secondary].filter((r): r is LocalRegion => Boolean(r));
    return new Promise((resolve, reject) => {
      const check = () => regions.every((r) => r.targetGroup.inRotation().length >= r.group.capacity.desired);
      if (check()) return resolve();
      const timer = setTimeout(() => {
        unsubscribe();
        reject(
          new StayupError(
            `only ${this.targetGroup.inRotation().length} of ${this.group.capacity.desired} instances became healthy within ${timeoutMs / 1000} s`,
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

  private regionStatus(region: LocalRegion): RegionStatus {
    const instances = region.group.list().map((i) => {
      const target = region.targetGroup.get(i.instanceId);
      return {
        id: i.instanceId,
        az: i.az,
        pid: i.pid,
        port: i.port,
        state: i.state,
        health: target?.health ?? "unregistered",
        healthy: target?.health === "healthy",
        cpuPercent: region.scaling.cpu.get(i.instanceId),
        version: region.group.versionOf(i.instanceId),
      };
    });
    return {
      name: region.name,
      role: region.options.role,
      listener: region.loadBalancer.url,
      down: region.down,
      availabilityZones: region.group.availabilityZones.map((name) => ({
        name,
        impaired: region.group.impairedAvailabilityZones.includes(name),
      })),
      group: {
        ...region.group.capacity,
        inService: instances.filter((i) => i.healthy).length,
        averageCpuPercent: region.scaling.lastAverage,
      },
      instances,
      version: region.group.version,
    };
  }

  status(): StackStatus {
    const { stack } = this.options;
    const primary = this.regionStatus(this.primary);
    return {
      name: stack.name,
      environment: stack.environment,
      topology: stack.topology,
      service: serviceTraffic(stack),
      region: stack.regions.primary.name,
      listener: this.loadBalancer.url,
      pid: process.pid,
      version: this.primary.group.version,
      redis: {
        url: this.redis.url,
        pid: this.redis.pid,
        nodes: this.redis instanceof RedisReplicationController ? this.redis.nodeStatus() : undefined,
        secondary: this.secondaryRedis && {
          url: this.secondaryRedis.url,
          nodes:
            this.secondaryRedis instanceof RedisReplicationController
              ? this.secondaryRedis.nodeStatus()
              : undefined,
        },
        crossRegion: this.crossRegion?.status(),
      },
      group: primary.group,
      instances: primary.instances,
      regions: [primary, ...(this.secondary ? [this.regionStatus(this.secondary)] : [])],
      dns: this.dns && this.failover ? { ...this.dns.describe(), ...this.failover.describe() } : undefined,
    };
  }

  /** Stops in reverse order of start: DNS, instances drain, listeners, then Redis. */
  stop(reason = "requested"): Promise<void> {
    this.stopped ??= (async () => {
      this.events.publish({ type: "stack.stopping", reason });
      this.failover?.stop();
      await this.dns?.close();
      await Promise.all([this.primary.stop(), this.secondary?.stop()]);
      this.crossRegion?.stop();
      await Promise.all([this.redis.stop(), this.secondaryRedis?.stop()]);
      this.events.publish({ type: "stack.stopped" });
    })();
    return this.stopped;
  }
}
