import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, openSync } from "node:fs";
import path from "node:path";
import type { EventPublisher } from "../events/bus.ts";
import type { TargetGroupController } from "../target-group/controller.ts";

export interface GroupCapacity {
  min: number;
  desired: number;
  max: number;
}

export interface InstanceGroupOptions {
  name: string;
  region: string;
  availabilityZones: string[];
  capacity: GroupCapacity;
  /** The bundled web service every instance runs (may be set after construction, before start). */
  serviceEntry: string;
  /** Environment every instance gets (Redis endpoint and the like). */
  instanceEnvironment: () => Record<string, string>;
  logDir: string;
  host?: string;
  /** An instance that is not healthy this long after launch is replaced (the ASG's grace period). */
  healthCheckGracePeriodMs?: number;
  /** How long a terminated instance may drain before it is killed. */
  terminationTimeoutMs?: number;
}

export type InstanceState = "pending" | "in-service" | "terminating";

export interface Instance {
  instanceId: string;
  az: string;
  pid: number;
  port: number;
  state: InstanceState;
  launchedAt: number;
  process: ChildProcess;
}

const newInstanceId = () => `i-${randomBytes(8).toString("hex")}`;

/**
 * An Auto Scaling group of local processes: keeps `desired` instances running, spread evenly over
 * the availability zones, and replaces any instance that exits or that its target group reports
 * unhealthy (the ASG's ELB health check type).
 */
export class InstanceGroupController {
  readonly capacity: GroupCapacity;
  private readonly instances = new Map<string, Instance>();
  private readonly launching = new Map<string, { az: string }>();
  /** Instances that died and whose replacement has not launched yet, oldest first. */
  private readonly awaitingReplacement: { instanceId: string; az: string }[] = [];
  private readonly unsubscribe: () => void;
  private reconcileTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private consecutiveLaunchFailures = 0;
  private stopped = false;
  /** Unhealthy instances kept running until a replacement is healthy (they do not count as capacity). */
  private readonly kept = new Set<string>();
  /** AZs taken out of service (an AZ outage): no instance launches there until restored. */
  private readonly impairedZones = new Set<string>();

  constructor(
    readonly options: InstanceGroupOptions,
    private readonly targetGroup: TargetGroupController,
    private readonly events: EventPublisher,
  ) {
    this.capacity = { ...options.capacity };
    mkdirSync(options.logDir, { recursive: true });
    this.unsubscribe = events.subscribe((e) => {
      if (e.type === "target.unhealthy") {
        const instance = this.instances.get(e.instanceId);
        if (instance && instance.state !== "terminating") this.onUnhealthy(instance, e.reason);
      } else if (e.type === "target.healthy") {
        // A healthy instance: anything kept only because it was the last one may go now.
        this.releaseKept(e.instanceId);
        const instance = this.instances.get(e.instanceId);
        if (instance && instance.state === "pending") {
          instance.state = "in-service";
          this.consecutiveLaunchFailures = 0;
        }
      }
    });
  }

  set serviceEntry(entry: string) {
    this.options.serviceEntry = entry;
  }

  start(): void {
    this.reconcile();
    // Events drive reconciliation; this periodic pass catches anything an event could not.
    this.reconcileTimer = setInterval(() => this.reconcile(), 1000);
  }

  list(): Instance[] {
    return [...this.instances.values()];
  }

  get availabilityZones(): readonly string[] {
    return this.options.availabilityZones;
  }

  /** Sets min and desired together (a failover raises the floor so scaling cannot empty the group). */
  setCapacity(capacity: { min: number; desired: number }, reason: string): void {
    this.capacity.min = Math.max(0, Math.min(capacity.min, this.capacity.max));
    const desired = Math.max(this.capacity.min, Math.min(this.capacity.max, capacity.desired));
    this.capacity.desired = desired;
    this.events.publish({ type: "group.capacity-changed", ...this.capacity, reason });
    this.reconcile();
  }

  setDesiredCapacity(desired: number, reason: string): void {
    const bounded = Math.max(this.capacity.min, Math.min(this.capacity.max, desired));
    if (bounded === this.capacity.desired) return;
    this.capacity.desired = bounded;
    this.events.publish({ type: "group.capacity-changed", ...this.capacity, reason });
    this.reconcile();
  }

  /** The desired-state loop: launch what is missing, terminate what is extra. */
  reconcile(): void {
    if (this.stopped) return;
    const active =
      this.list().filter((i) => i.state !== "terminating" && !this.kept.has(i.instanceId)).length +
      this.launching.size;
    if (active < this.capacity.desired) {
      if (this.retryTimer) return; // backing off after failed launches
      for (let n = active; n < this.capacity.desired; n++) this.launch();
    } else if (active > this.capacity.desired) {
      for (let n = active; n > this.capacity.desired; n--) {
        const victim = this.scaleInVictim();
        if (!victim) break;
        this.terminate(victim, "scale in");
      }
    }
  }

  /**
   * Replaces an unhealthy instance. When it is the last one that might still serve (every other
   * instance unhealthy too, as under an overload that slows health checks), it stays until its
   * replacement is healthy: launch before terminate, like the ASG's instance maintenance policy at
   * 100 % minimum healthy. Terminating them all at once would turn slowness into an outage.
   */
  private onUnhealthy(instance: Instance, reason: string): void {
    const othersHealthy = this.list().some(
      (i) => i !== instance && i.state === "in-service" && !this.kept.has(i.instanceId) && this.isHealthy(i),
    );
    const alive = instance.process.exitCode === null && instance.process.signalCode === null;
    if (othersHealthy || !alive) {
      this.replace(instance, `unhealthy: ${reason}`);
      return;
    }
    if (this.kept.has(instance.instanceId)) return;
    this.kept.add(instance.instanceId);
    this.events.publish({
      type: "instance.terminating",
      instanceId: instance.instanceId,
      az: instance.az,
      reason: `unhealthy (${reason}); kept until a replacement is healthy, as the last one serving`,
    });
    this.reconcile();
  }

  private isHealthy(instance: Instance): boolean {
    return this.targetGroup.get(instance.instanceId)?.health === "healthy";
  }

  /** After `healthyId` turned healthy: replace the instances kept as last ones (or keep them, recovered). */
  private releaseKept(healthyId: string): void {
    if (this.kept.has(healthyId)) {
      this.kept.delete(healthyId); // recovered by itself: an ordinary member again
      this.reconcile();
      return;
    }
    for (const id of [...this.kept]) {
      this.kept.delete(id);
      const instance = this.instances.get(id);
      if (instance && instance.state !== "terminating")
        this.replace(instance, "unhealthy; its replacement is healthy");
    }
  }

  /** Terminates an instance and lets reconciliation launch its replacement. */
  replace(instance: Instance, reason: string): void {
    this.awaitingReplacement.push({ instanceId: instance.instanceId, az: instance.az });
    this.terminate(instance, reason);
    this.reconcile();
  }

  private zoneCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const az of this.options.availabilityZones) if (!this.impairedZones.has(az)) counts.set(az, 0);
    for (const i of this.list()) {
      if (i.state !== "terminating" && counts.has(i.az)) counts.set(i.az, (counts.get(i.az) ?? 0) + 1);
    }
    for (const { az } of this.launching.values())
      if (counts.has(az)) counts.set(az, (counts.get(az) ?? 0) + 1);
    return counts;
  }

  /** The AZ with the fewest instances, in the configured order on ties (the ASG's AZ balancing). */
  private zoneForLaunch(): string | undefined {
    let best: string | undefined;
    let bestCount = Number.POSITIVE_INFINITY;
    for (const [az, count] of this.zoneCounts()) {
      if (count < bestCount) {
        best = az;
        bestCount = count;
      }
    }
    return best;
  }

  /** The ASG's default termination policy: from the most crowded AZ, the oldest instance. */
  private scaleInVictim(): Instance | undefined {
    const counts = this.zoneCounts();
    // Kept instances are not capacity: they leave on their own once a replacement is healthy.
    const candidates = this.list().filter((i) => i.state !== "terminating" && !this.kept.has(i.instanceId));
    candidates.sort(
      (a, b) => (counts.get(b.az) ?? 0) - (counts.get(a.az) ?? 0) || a.launchedAt - b.launchedAt,
    );
    return candidates[0];
  }

  private launch(): void {
    const az = this.zoneForLaunch();
    if (!az) return;
    const instanceId = newInstanceId();
    this.launching.set(instanceId, { az });
    const log = openSync(path.join(this.options.logDir, `${instanceId}.log`), "a");
    const child = fork(this.options.serviceEntry, [], {
      env: {
        ...process.env,
        ...this.options.instanceEnvironment(),
        STAYUP_INSTANCE_ID: instanceId,
        STAYUP_AZ: az,
        STAYUP_REGION: this.options.region,
        HOST: this.options.host ?? "127.0.0.1",
        PORT: "0",
      },
      stdio: ["ignore", log, log, "ipc"],
      execArgv: [],
    });
    const launchTimeout = setTimeout(() => fail("did not start listening within 10 s"), 10_000);
    const fail = (reason: string) => {
      clearTimeout(launchTimeout);
      if (!this.launching.delete(instanceId)) return;
      child.kill("SIGKILL");
      this.events.publish({ type: "instance.launch-failed", instanceId, az, reason });
      this.launchFailed();
    };
    child.once("error", (error) => fail(error.message));
    child.once("exit", (code, signal) => {
      if (this.launching.has(instanceId)) fail(`exited during launch (${signal ?? `code ${code}`})`);
    });
    child.on("message", (message: { type?: string; port?: number }) => {
      if (message?.type !== "listening" || typeof message.port !== "number") return;
      if (!this.launching.delete(instanceId)) return;
      clearTimeout(launchTimeout);
      this.inService(instanceId, az, message.port, child);
    });
  }

  private inService(instanceId: string, az: string, port: number, child: ChildProcess): void {
    const instance: Instance = {
      instanceId,
      az,
      port,
      pid: child.pid ?? 0,
      state: "pending",
      launchedAt: Date.now(),
      process: child,
    };
    this.instances.set(instanceId, instance);
    child.removeAllListeners("exit");
    child.once("exit", (code, signal) => this.exited(instance, code, signal));
    this.events.publish({ type: "instance.launched", instanceId, az, pid: instance.pid, port });
    const replaced = this.awaitingReplacement.shift();
    if (replaced) {
      this.events.publish({
        type: "instance.replaced",
        instanceId: replaced.instanceId,
        replacementId: instanceId,
        az,
      });
    }
    this.targetGroup.register({ instanceId, az, host: this.options.host ?? "127.0.0.1", port });
    const grace = this.options.healthCheckGracePeriodMs ?? 15_000;
    setTimeout(() => {
      if (instance.state === "pending" && this.instances.has(instanceId)) {
        this.replace(instance, `not healthy within the ${grace / 1000} s grace period`);
      }
    }, grace).unref();
  }

  private exited(instance: Instance, code: number | null, signal: string | null): void {
    const expected = instance.state === "terminating";
    this.instances.delete(instance.instanceId);
    this.targetGroup.remove(instance.instanceId);
    this.events.publish({
      type: "instance.terminated",
      instanceId: instance.instanceId,
      az: instance.az,
      pid: instance.pid,
      code,
      signal,
      expected,
    });
    if (!expected) {
      this.awaitingReplacement.push({ instanceId: instance.instanceId, az: instance.az });
      if (Date.now() - instance.launchedAt < 2000) this.launchFailed();
    }
    this.reconcile();
  }

  /** Repeated launch failures back off exponentially (a crash loop must not fork-bomb the laptop). */
  private launchFailed(): void {
    this.consecutiveLaunchFailures++;
    if (this.consecutiveLaunchFailures < 3 || this.retryTimer) return;
    const delay = Math.min(250 * 2 ** (this.consecutiveLaunchFailures - 3), 10_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.reconcile();
    }, delay);
  }

  private terminate(instance: Instance, reason: string): void {
    if (instance.state === "terminating") return;
    instance.state = "terminating";
    this.events.publish({
      type: "instance.terminating",
      instanceId: instance.instanceId,
      az: instance.az,
      reason,
    });
    // Out of rotation first, then SIGTERM: the instance drains what it already accepted.
    void this.targetGroup.deregister(instance.instanceId);
    instance.process.kill("SIGTERM");
    const timeout = setTimeout(
      () => instance.process.kill("SIGKILL"),
      this.options.terminationTimeoutMs ?? 10_000,
    );
    instance.process.once("exit", () => clearTimeout(timeout));
  }

  /** Takes every instance of one AZ down at once and launches nothing there until restored. */
  impairZone(az: string): Instance[] {
    this.impairedZones.add(az);
    const victims = this.list().filter((i) => i.az === az && i.state !== "terminating");
    for (const i of victims) {
      i.state = "terminating";
      i.process.kill("SIGKILL");
    }
    this.reconcile();
    return victims;
  }

  restoreZone(az: string): void {
    this.impairedZones.delete(az);
    this.reconcile();
  }

  /** Kills every instance at once (SIGKILL) and launches nothing until `resume` (a region outage). */
  async kill(): Promise<void> {
    this.stopped = true;
    clearInterval(this.reconcileTimer);
    await this.signalAll("SIGKILL");
  }

  /** Reconciles again after `kill`. */
  resume(): void {
    this.stopped = false;
    this.start();
  }

  /** Stops every instance gracefully (SIGTERM), in parallel. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.reconcileTimer);
    clearTimeout(this.retryTimer);
    this.unsubscribe();
    await this.signalAll("SIGTERM", this.options.terminationTimeoutMs ?? 10_000);
  }

  /** Signals every instance and waits for all to exit; SIGKILL after `killAfterMs` if given. */
  private async signalAll(signal: NodeJS.Signals, killAfterMs?: number): Promise<void> {
    const exits = this.list().map(
      (i) =>
        new Promise<void>((resolve) => {
          if (i.process.exitCode !== null || i.process.signalCode !== null) return resolve();
          i.process.once("exit", () => resolve());
          i.state = "terminating";
          i.process.kill(signal);
          if (killAfterMs !== undefined) setTimeout(() => i.process.kill("SIGKILL"), killAfterMs).unref();
        }),
    );
    await Promise.all(exits);
  }
}
