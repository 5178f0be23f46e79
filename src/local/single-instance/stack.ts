import path from "node:path";
import { localRedisPassword } from "../redis/process.ts";
import { bundleWebService } from "../../web-service/bundle.ts";
import { type DerivedSettings, derive, serviceTraffic } from "../../stack/derived.ts";
import type { HealthCheckSettings } from "../target-group/controller.ts";
import { StayupError } from "../../shared/errors.ts";
import { assertPortFree, assertPortsFree } from "../../shared/net.ts";
import { serviceFolderOf, serviceVersion } from "../../web-service/version.ts";
import { type RollResult, stopReason } from "../rolling-deploy/roll.ts";
import { LocalStack, type LocalStackOptions, type StackStatus } from "../runtime.ts";
import { DataVolume } from "./data-volume.ts";
import { assertServiceStartable } from "../instance-group/service-command.ts";
import { instanceHealth, SingleInstanceGroup } from "./group.ts";
import { StableAddress } from "./stable-address.ts";

/** The single instance's own health check: the target group's path, thresholds and local timings. */
export function singleInstanceHealthCheck(derived: DerivedSettings): HealthCheckSettings {
  const hc = derived.instanceHealthCheck;
  return {
    path: hc.path,
    healthyThreshold: hc.healthyThreshold,
    unhealthyThreshold: hc.unhealthyThreshold,
    intervalMs: hc.local.intervalMs,
    timeoutMs: hc.local.timeoutMs,
  };
}

/**
 * Seed 003 locally: no load balancer, no shared Redis; a group of one whose instance runs its own
 * Redis on the group's data volume, reached through the stable address. It reuses the LocalStack
 * surface (events, status, stop) that the CLI, the control plane and the drills read.
 */
export class SingleInstanceLocalStack extends LocalStack {
  readonly address: StableAddress;
  readonly volume: DataVolume;
  singleGroup?: SingleInstanceGroup;
  private singleStopped?: Promise<void>;
  /** The version the instance runs (bundle + settings hashed). */
  version = "";
  /** What makes the version running (its bundle, the settings rolled), and the one before it. */
  private deployed = { artifact: "", settings: {} as Record<string, string> };
  private previous?: { artifact: string; settings: Record<string, string> };
  private instanceSettings = () => ({
    topology: "single-instance",
    az: this.options.stack.regions.primary.availabilityZones[0] ?? "",
  });
  /** The user's service folder (its code), hashed into the version; none for the counter. */
  private serviceFolder = () => serviceFolderOf(this.options.stack.webService.start, this.options.stateDir);

  constructor(options: LocalStackOptions) {
    super(options);
    const { stack } = options;
    this.volume = new DataVolume(
      path.join(options.stateDir, "volumes", `${stack.name}-${stack.environment}-single`),
      this.events,
    );
    // The address is the stack's listener: where the load balancer would listen in the other topology.
    this.address = new StableAddress(
      { host: stack.loadBalancer.local.host, port: options.listenerPort ?? stack.loadBalancer.local.port },
      this.events,
    );
  }

  override async start(): Promise<void> {
    const { stack, stateDir } = this.options;
    assertServiceStartable(stack.webService.start);
    this.events.publish({
      type: "stack.starting",
      environment: stack.environment,
      region: stack.regions.primary.name,
    });
    await assertPortsFree([
      {
        option: "--port",
        setting: "loadBalancer.local.port",
        check: () => assertPortFree(this.address.listener.host, this.address.listener.port, "address", ""),
      },
    ]);
    // With the code-cache entry: a replacement is downtime, and compiling is much of its start.
    const entry = await bundleWebService(path.join(stateDir, "build"), { codeCache: true });
    await this.address.listen();
    // The CLI and drills read the stack's listener from here.
    this.primary.loadBalancer.url = this.address.url;
    const az = stack.regions.primary.availabilityZones[0] as string;
    this.version = serviceVersion(entry, this.instanceSettings(), this.serviceFolder());
    this.deployed = { artifact: entry, settings: {} };
    const version = this.version;
    this.singleGroup = new SingleInstanceGroup({
      name: `${stack.name}-${stack.environment}-single`,
      region: stack.regions.primary.name,
      az,
      serviceEntry: entry,
      service: stack.webService.start,
      logDir: path.join(stateDir, "logs", stack.regions.primary.name),
      volume: this.volume,
      address: this.address,
      events: this.events,
      processes: this.processes,
      instanceEnvironment: () => ({ LOG_LEVEL: "info", STAYUP_VERSION: version }),
      redisPassword: localRedisPassword(stateDir),
      healthCheck: singleInstanceHealthCheck(derive(stack)),
      healthCheckGracePeriodMs: derive(stack).healthCheckGracePeriod.localMs,
    });
    try {
      await this.singleGroup.start();
    } catch (error) {
      await this.stop("start failed");
      throw error;
    }
    this.events.publish({ type: "stack.ready", listener: this.address.url, healthyTargets: 1 });
  }

  /** A roll of the one instance: stop, then start the new version on the volume (downtime; see group.roll). */
  async roll(artifact: string, settings: Record<string, string>, signal?: AbortSignal): Promise<RollResult> {
    const group = this.singleGroup;
    if (!group) throw new Error("the stack is not started");
    const startedAt = Date.now();
    const fromVersion = this.version;
    const toVersion = serviceVersion(
      artifact,
      { ...this.instanceSettings(), ...settings },
      this.serviceFolder(),
    );
    const done = (r: {
      replaced: string[];
      rolledBack: boolean;
      reason?: string;
      stopped?: boolean;
    }): RollResult => ({
      fromVersion,
      toVersion,
      instancesReplaced: r.rolledBack ? [] : r.replaced,
      rolledBack: r.rolledBack,
      ...(r.reason ? { reason: r.reason } : {}),
      ...(r.stopped ? { stopped: true } : {}),
      durationSeconds: (Date.now() - startedAt) / 1000,
    });
    if (toVersion === fromVersion)
      return done({ replaced: [], rolledBack: false, reason: "already at this version" });
    // Stopped before it began: nothing to roll back.
    if (signal?.aborted)
      return done({ replaced: [], rolledBack: true, reason: stopReason(signal), stopped: true });
    this.events.publish({ type: "roll.started", fromVersion, toVersion, instances: 1 });
    const rolled = await group.roll(artifact, { ...settings, STAYUP_VERSION: toVersion }, { signal });
    const result = rolled.stopped ? { ...rolled, reason: stopReason(signal as AbortSignal) } : rolled;
    if (result.rolledBack) {
      this.events.publish({
        type: "roll.rolled-back",
        fromVersion: toVersion,
        toVersion: fromVersion,
        reason: result.reason ?? "",
      });
    } else {
      this.version = toVersion;
      this.previous = this.deployed;
      this.deployed = { artifact, settings: { ...settings } };
      this.events.publish({
        type: "roll.completed",
        version: toVersion,
        instancesReplaced: 1,
        durationSeconds: (Date.now() - startedAt) / 1000,
      });
    }
    return done(result);
  }

  /**
   * The last completed roll rolled back (stopped after its end: POST /roll/stop naming it): the
   * version before it deployed again, as a roll (stop, then start: a gap clients see).
   */
  async revertRoll(reason: string): Promise<RollResult> {
    const previous = this.previous;
    if (!previous) throw new Error("no completed roll to roll back");
    const back = await this.roll(previous.artifact, previous.settings);
    // The way back failed and was itself rolled back: the instance still runs the roll's version.
    if (back.rolledBack) {
      throw new StayupError(
        `the roll could not be rolled back to ${back.toVersion}: ${back.reason ?? "its instance did not turn healthy"}; the instance stays on ${back.fromVersion}`,
        "see the instance's log under .stayup/, then roll the version you want with `stayup roll`",
      );
    }
    return {
      ...back,
      fromVersion: back.toVersion,
      toVersion: back.fromVersion,
      instancesReplaced: [],
      rolledBack: true,
      stopped: true,
      reason,
    };
  }

  override status(): StackStatus {
    const { stack } = this.options;
    const instance = this.singleGroup?.current();
    const associated = this.address.associatedWith;
    const instances = instance
      ? [
          {
            id: instance.instanceId,
            az: instance.az,
            pid: instance.pid,
            port: instance.port,
            state: "in-service",
            // The address and the instance's own health check (an unhealthy one is replaced).
            health: `${associated === instance.instanceId ? "associated" : "not associated"}, ${instanceHealth(instance)}`,
            healthy: associated === instance.instanceId,
            version: instance.version,
          },
        ]
      : [];
    const group = { min: 1, desired: 1, max: 1, inService: instances.filter((i) => i.healthy).length };
    return {
      name: stack.name,
      environment: stack.environment,
      topology: stack.topology,
      service: serviceTraffic(stack),
      region: stack.regions.primary.name,
      listener: this.address.url,
      pid: process.pid,
      version: this.version,
      redis: {
        url: instance ? `redis://127.0.0.1:${instance.redisPort}` : "(no instance)",
        pid: instance?.redisPid,
      },
      group,
      instances,
      regions: [
        {
          name: stack.regions.primary.name,
          role: "primary",
          listener: this.address.url,
          down: false,
          // Pinned to one zone: the data volume lives there (as an EBS volume does).
          availabilityZones: [
            { name: stack.regions.primary.availabilityZones[0] as string, impaired: false },
          ],
          group,
          instances,
          version: this.version,
        },
      ],
      singleInstance: {
        address: this.address.address,
        associatedWith: associated,
        volume: this.volume.describe(),
      },
    };
  }

  override stop(reason = "requested"): Promise<void> {
    this.singleStopped ??= (async () => {
      this.events.publish({ type: "stack.stopping", reason });
      await this.singleGroup?.stop();
      await this.address.close();
      this.events.publish({ type: "stack.stopped" });
    })();
    return this.singleStopped;
  }
}
