import { randomBytes } from "node:crypto";
import path from "node:path";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher, TimedStackEvent } from "../events/bus.ts";
import {
  decide,
  defaultGroupPolicy,
  type GroupPolicy,
  type GroupState,
  type ObservedInstance,
} from "./decide.ts";
import type { InstanceHandle, Launcher } from "./launcher.ts";
import { ProcessLauncher } from "./process-launcher.ts";
import type { ServiceStart } from "./service-command.ts";

export interface GroupCapacity {
  min: number;
  desired: number;
  max: number;
}

/** What the group needs of its target group: the ELB side of the ASG's attachment. */
export interface TargetRegistry {
  register(target: { instanceId: string; az: string; host: string; port: number }): void;
  /** Out of rotation; resolves once the target has drained. */
  deregister(instanceId: string): Promise<void>;
  /** The target is already gone (its instance stopped): no draining. */
  remove(instanceId: string): void;
}

export interface InstanceGroupOptions {
  name: string;
  region: string;
  availabilityZones: string[];
  capacity: GroupCapacity;
  /** The bundled web service every instance runs (may be set after construction, before start). */
  serviceEntry: string;
  /** The version instances are launched with. */
  version?: string;
  /** Environment every instance gets (Redis endpoint and the like). */
  instanceEnvironment: () => Record<string, string>;
  logDir: string;
  /** Working directory of every instance (default: the current one). */
  workingDirectory?: string;
  host?: string;
  /** The group's replacement rules (grace period, replacement delay, crash-loop back-off). */
  policy?: Partial<GroupPolicy>;
  /** How long a terminated instance may drain before it is killed. */
  terminationTimeoutMs?: number;
  /** How instances are started (default: forked processes). */
  launcher?: Launcher;
  /** The user's service (webService.start): instances run its command instead of the counter. */
  service?: ServiceStart;
  /** The clock decisions are taken at (a fake one in tests). */
  now?: () => number;
  /** How often the group reconciles besides on events (0: only on events and explicit calls). */
  reconcileIntervalMs?: number;
}

export type InstanceState = "pending" | "in-service" | "terminating";

/** An instance as status and the other controllers see it. */
export interface Instance {
  instanceId: string;
  az: string;
  pid: number;
  port: number;
  state: InstanceState;
  launchedAt: number;
  /** How busy its event loop was lately (0..1), where the instance reports it. */
  eventLoopUtilization?: number;
}

interface Member extends ObservedInstance {
  handle?: InstanceHandle;
  /** Kept unhealthy on purpose; published once. */
  heldReason?: string;
}

const NEXT_PASS = "retried at the next reconcile pass";

const newInstanceId = () => `i-${randomBytes(8).toString("hex")}`;

/**
 * An Auto Scaling group: keeps `desired` instances, spread over the availability zones, and
 * replaces the broken ones. Each step observes (launcher, target-group events), takes the pure
 * decision of decide.ts, and acts through the launcher seam.
 */
export class InstanceGroupController {
  readonly capacity: GroupCapacity;
  private readonly members = new Map<string, Member>();
  /** Instances that died and whose replacement has not launched yet, oldest first. */
  private readonly awaitingReplacement: { instanceId: string; az: string }[] = [];
  private readonly unsubscribe: () => void;
  private readonly launcher: Launcher;
  private readonly policy: GroupPolicy;
  private readonly now: () => number;
  private reconcileTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private launchFailures: GroupState["launchFailures"] = { consecutive: 0 };
  /** The target group's group-wide slowdown (target.slowdown events). */
  private slowdown: { slow: boolean; endedAt?: number } = { slow: false };
  private stopped = false;
  /** AZs taken out of service (an AZ outage): no instance launches there until restored. */
  private readonly impairedZones = new Set<string>();
  /** Launches under way: stop() waits for them, so nothing started outlives the group. */
  private readonly launches = new Set<Promise<unknown>>();
  /** Every timer, event handler and launch callback runs under it: a failure is an event, then a retry. */
  private readonly guard: ControllerGuard;
  version: string;
  /** The instance settings of the current version (see deployVersion). */
  versionSettings: Record<string, string> = {};

  constructor(
    readonly options: InstanceGroupOptions,
    private readonly targetGroup: TargetRegistry,
    private readonly events: EventPublisher,
  ) {
    this.capacity = { ...options.capacity };
    this.guard = new ControllerGuard({ controller: "instance-group", events });
    this.policy = { ...defaultGroupPolicy, ...options.policy };
    this.launcher =
      options.launcher ??
      new ProcessLauncher({
        host: options.host,
        service: options.service,
        // A process still starting is not killed sooner than the grace period lets it become
        // healthy: on a busy host a start took over 10 s, and killing it at 10 s only threw away
        // the CPU it had spent and started over (the cpu-spike drill beside CPU-bound processes).
        startTimeoutMs: this.policy.healthCheckGracePeriodMs,
        // An instance whose log cannot be opened still runs: an event, and the next launch retries.
        onLogUnavailable: (instanceId, error) =>
          this.guard.report(
            new Error(`cannot open the log of ${instanceId}: ${error.message}`),
            "launched without a log file; the next launch tries again",
          ),
      });
    this.now = options.now ?? Date.now;
    this.version = options.version ?? "1";
    this.unsubscribe = events.subscribe(
      this.guard.wrap((e: TimedStackEvent) => {
        if (e.type === "target.slowdown") {
          this.slowdown = e.slow ? { slow: true } : { slow: false, endedAt: this.now() };
          this.reconcile();
          return;
        }
        if (e.type !== "target.healthy" && e.type !== "target.unhealthy") return;
        const member = this.members.get(e.instanceId);
        if (!member || member.lifecycle === "terminating") return;
        if (e.type === "target.healthy") {
          member.health = "healthy";
          member.everHealthy = true;
          member.unhealthySince = undefined;
          member.healthySince ??= this.now();
          member.heldReason = undefined;
          this.launchFailures = { consecutive: 0 };
        } else {
          member.health = "unhealthy";
          member.unhealthySince ??= this.now();
          member.healthySince = undefined;
        }
        this.reconcile();
      }, NEXT_PASS),
    );
  }

  /**
   * Rolls the group to `version` (a rolling deploy): instances of another version are replaced,
   * launch first. `settings` is the instance environment that makes this version (on top of the
   * group's own); setting the previous version back is the rollback.
   */
  deployVersion(version: string, settings: Record<string, string>): void {
    this.version = version;
    this.versionSettings = { ...settings };
    this.reconcile();
  }

  /** The version each listening instance runs. */
  versionOf(instanceId: string): string | undefined {
    return this.members.get(instanceId)?.version;
  }

  set serviceEntry(entry: string) {
    this.options.serviceEntry = entry;
  }

  start(): void {
    this.stopped = false;
    this.guard.resume();
    this.guardedReconcile();
    // Events drive reconciliation; this pass lets time-based rules (grace, replacement delay) act.
    const every = this.options.reconcileIntervalMs ?? 1000;
    if (every > 0) this.reconcileTimer = setInterval(() => this.guardedReconcile(), every);
  }

  /** A failed pass is an event and is retried by the next one; it never ends the runtime. */
  private guardedReconcile(): void {
    this.guard.run(() => this.reconcile(), NEXT_PASS);
  }

  /** Instances that listen (launched), as status and scaling see them. */
  list(): Instance[] {
    const out: Instance[] = [];
    for (const m of this.members.values()) {
      if (!m.handle) continue;
      out.push({
        instanceId: m.instanceId,
        az: m.az,
        pid: m.handle.pid,
        port: m.handle.port,
        state: m.lifecycle === "terminating" ? "terminating" : m.everHealthy ? "in-service" : "pending",
        launchedAt: m.launchedAt,
        eventLoopUtilization: m.handle.eventLoopUtilization,
      });
    }
    return out;
  }

  /** Sends a runtime message (a drill's fault) to a running instance; false if it has no channel. */
  sendTo(instanceId: string, message: object): boolean {
    return this.members.get(instanceId)?.handle?.send?.(message) ?? false;
  }

  get availabilityZones(): readonly string[] {
    return this.options.availabilityZones;
  }

  /** Zones taken down by an AZ outage: nothing launches there until restored. */
  get impairedAvailabilityZones(): readonly string[] {
    return [...this.impairedZones];
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

  /**
   * Terminates one instance and lowers desired by one (the ASG's TerminateInstanceInAutoScalingGroup
   * with ShouldDecrementDesiredCapacity): a capacity provider's scale-in chooses which instance.
   */
  terminateInstance(instanceId: string, reason: string): boolean {
    const member = this.members.get(instanceId);
    if (!member || member.lifecycle === "terminating" || this.capacity.desired <= this.capacity.min)
      return false;
    this.capacity.desired -= 1;
    this.events.publish({ type: "group.capacity-changed", ...this.capacity, reason });
    this.terminate(member, reason);
    this.reconcile();
    return true;
  }

  /** What decide.ts sees. */
  observe(): GroupState {
    return {
      desired: this.capacity.desired,
      availabilityZones: this.options.availabilityZones,
      impairedZones: [...this.impairedZones],
      instances: [...this.members.values()].map(
        ({ handle: _handle, heldReason: _held, ...observed }) => observed,
      ),
      launchFailures: { ...this.launchFailures },
      version: this.version,
      slowdown: { ...this.slowdown },
    };
  }

  /** One step of the desired-state loop: observe, decide, act. */
  reconcile(): void {
    if (this.stopped) return;
    const now = this.now();
    const decision = decide(this.observe(), this.policy, now);
    for (const { instanceId, reason } of decision.held) {
      const member = this.members.get(instanceId);
      if (!member || member.heldReason === reason) continue;
      member.heldReason = reason;
      this.events.publish({ type: "instance.replacement-held", instanceId, az: member.az, reason });
    }
    for (const { instanceId, reason } of decision.terminate) {
      const member = this.members.get(instanceId);
      if (member) this.terminate(member, reason);
    }
    for (const launch of decision.launch) this.launch(launch.az, launch.replaces);
    if (decision.launchBlockedUntil !== undefined && !this.retryTimer) {
      this.retryTimer = setTimeout(
        () => {
          this.retryTimer = undefined;
          this.guardedReconcile();
        },
        Math.max(0, decision.launchBlockedUntil - now),
      );
      this.retryTimer.unref();
    }
  }

  private launch(az: string, replaces: string | undefined): void {
    const instanceId = newInstanceId();
    const member: Member = {
      instanceId,
      az,
      lifecycle: "launching",
      health: "initial",
      launchedAt: this.now(),
      everHealthy: false,
      replaces,
      version: this.version,
    };
    this.members.set(instanceId, member);
    let started: Promise<InstanceHandle>;
    try {
      started = this.launcher.launch({
        instanceId,
        az,
        region: this.options.region,
        version: this.version,
        artifact: this.options.serviceEntry,
        environment: { ...this.options.instanceEnvironment(), ...this.versionSettings },
        workingDirectory: this.options.workingDirectory ?? process.cwd(),
        logFile: path.join(this.options.logDir, `${instanceId}.log`),
      });
    } catch (error) {
      // A launcher that throws at once launched nothing: the next pass launches again.
      this.members.delete(instanceId);
      throw error;
    }
    const launching = started
      .then(
        (handle) => this.launched(member, handle),
        (error: Error) => {
          this.members.delete(instanceId);
          this.events.publish({ type: "instance.launch-failed", instanceId, az, reason: error.message });
          this.launchFailed();
          this.reconcile();
        },
      )
      .catch((error: unknown) => this.guard.report(error, NEXT_PASS))
      .finally(() => this.launches.delete(launching));
    this.launches.add(launching);
  }

  private async launched(member: Member, handle: InstanceHandle): Promise<void> {
    member.handle = handle;
    void handle.exited.then(
      this.guard.wrap(
        (exit: { code: number | null; signal: string | null }) => this.exited(member, exit.code, exit.signal),
        NEXT_PASS,
      ),
    );
    if (this.members.get(member.instanceId) !== member || member.lifecycle === "terminating") {
      // Terminated (or the group stopped) while it was starting.
      handle.terminate(this.stopped ? "SIGKILL" : "SIGTERM");
      await handle.exited;
      return;
    }
    member.lifecycle = "running";
    const { instanceId, az } = member;
    this.events.publish({ type: "instance.launched", instanceId, az, pid: handle.pid, port: handle.port });
    const replaced = member.replaces
      ? { instanceId: member.replaces, az: this.members.get(member.replaces)?.az ?? az }
      : this.awaitingReplacement.shift();
    if (replaced) {
      this.events.publish({
        type: "instance.replaced",
        instanceId: replaced.instanceId,
        replacementId: instanceId,
        az,
      });
    }
    this.targetGroup.register({ instanceId, az, host: handle.host, port: handle.port });
  }

  private exited(member: Member, code: number | null, signal: string | null): void {
    const expected = member.lifecycle === "terminating";
    this.members.delete(member.instanceId);
    this.targetGroup.remove(member.instanceId);
    this.events.publish({
      type: "instance.terminated",
      instanceId: member.instanceId,
      az: member.az,
      pid: member.handle?.pid ?? 0,
      code,
      signal,
      expected,
    });
    if (!expected) {
      this.awaitingReplacement.push({ instanceId: member.instanceId, az: member.az });
      // Dying within moments of starting is a crash loop, not bad luck.
      if (this.now() - member.launchedAt < 2000) this.launchFailed();
    }
    this.reconcile();
  }

  private launchFailed(): void {
    this.launchFailures = { consecutive: this.launchFailures.consecutive + 1, lastAt: this.now() };
  }

  private terminate(member: Member, reason: string): void {
    if (member.lifecycle === "terminating") return;
    member.lifecycle = "terminating";
    this.events.publish({
      type: "instance.terminating",
      instanceId: member.instanceId,
      az: member.az,
      reason,
    });
    const handle = member.handle;
    if (!handle) return; // still starting: stopped as soon as it is up (see launched)
    // Out of rotation first; once its in-flight requests are done (or the deregistration delay is
    // over), SIGTERM, and SIGKILL if it does not exit.
    void this.targetGroup
      .deregister(member.instanceId)
      .catch((error: unknown) => this.guard.report(error, "terminated without waiting for its draining"))
      .then(
        this.guard.wrap(() => {
          if (!handle.alive) return;
          handle.terminate("SIGTERM");
          const timeout = setTimeout(
            () => handle.terminate("SIGKILL"),
            this.options.terminationTimeoutMs ?? 10_000,
          );
          timeout.unref();
          void handle.exited.then(() => clearTimeout(timeout));
        }, NEXT_PASS),
      );
  }

  /** Takes every instance of one AZ down at once and launches nothing there until restored. */
  impairZone(az: string): Instance[] {
    this.impairedZones.add(az);
    const victims = this.list().filter((i) => i.az === az && i.state !== "terminating");
    for (const i of victims) {
      const member = this.members.get(i.instanceId);
      if (!member) continue;
      member.lifecycle = "terminating";
      member.handle?.terminate("SIGKILL");
    }
    // Instances still starting there never come up.
    for (const m of this.members.values()) if (m.az === az && !m.handle) m.lifecycle = "terminating";
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
    await Promise.allSettled([...this.launches]);
  }

  /** Reconciles again after `kill`. */
  resume(): void {
    this.start();
  }

  /** Stops every instance gracefully (SIGTERM), in parallel. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.reconcileTimer);
    clearTimeout(this.retryTimer);
    this.guard.stop();
    this.unsubscribe();
    await this.signalAll("SIGTERM", this.options.terminationTimeoutMs ?? 10_000);
    await Promise.allSettled([...this.launches]);
  }

  /** Signals every instance and waits for all to exit; SIGKILL after `killAfterMs` if given. */
  private async signalAll(signal: NodeJS.Signals, killAfterMs?: number): Promise<void> {
    const exits = [...this.members.values()].map(async (m) => {
      m.lifecycle = "terminating";
      const handle = m.handle;
      if (!handle || !handle.alive) return;
      handle.terminate(signal);
      const timer =
        killAfterMs === undefined ? undefined : setTimeout(() => handle.terminate("SIGKILL"), killAfterMs);
      timer?.unref();
      await handle.exited;
      clearTimeout(timer);
    });
    await Promise.all(exits);
  }
}
