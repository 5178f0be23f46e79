import type { ProcessRegistry } from "../processes.ts";
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync } from "node:fs";
import path from "node:path";
import { findFreePort, sleep } from "../../shared/net.ts";
import { ensurePrivateDir, openPrivateFile, withPrivateUmask } from "../../shared/private-file.ts";
import { instanceEnvironment } from "../instance-environment.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import { redisUrl } from "../redis/controller.ts";
import { persistenceArgs, startRedisProcess, writeNodeAuthConfig } from "../redis/process.ts";
import {
  type ServiceStart,
  signalService,
  spawnService,
  waitListening,
} from "../instance-group/service-command.ts";
import type { HealthCheckSettings } from "../target-group/controller.ts";
import { instanceEntry } from "../../web-service/bundle.ts";
import type { CodeCacheOutcome } from "../../web-service/code-cache.ts";
import { type DataVolume, VolumeInUseError } from "./data-volume.ts";
import { InstanceHealthCheck } from "./health-check.ts";
import type { StableAddress } from "./stable-address.ts";

export interface SingleInstanceGroupOptions {
  /** The group's name (the ASG's). */
  name: string;
  region: string;
  /** The one AZ: an EBS volume lives in one AZ, so the group is pinned to it (as on AWS). */
  az: string;
  serviceEntry: string;
  logDir: string;
  volume: DataVolume;
  address: StableAddress;
  events: EventPublisher;
  /** The user's service (webService.start): the instance runs its command instead of the counter. */
  service?: ServiceStart;
  /** Extra environment of every instance (version, broken-on-purpose settings...). */
  instanceEnvironment?: () => Record<string, string>;
  /**
   * Required by the instance's redis-server (it listens on loopback, where every local user can
   * connect); the web process gets it in its environment. Unset: no password.
   */
  redisPassword?: string;
  /** Where the instance's redis-server is recorded, so a killed runtime's copy is found and stopped. */
  processes?: ProcessRegistry;
  /**
   * The instance's health check (derived instanceHealthCheck: the target group's path, thresholds
   * and local timings). Without one, an instance that listens counts as healthy.
   */
  healthCheck?: HealthCheckSettings;
  /** An unhealthy instance is replaced only this long after its launch (the ASG's grace period). */
  healthCheckGracePeriodMs?: number;
}

/** One instance of seed 003: the web process and its own redis-server, data on the volume. */
export interface SingleInstance {
  instanceId: string;
  az: string;
  pid: number;
  port: number;
  redisPort: number;
  redisPid: number;
  launchedAt: number;
  /** The version it was launched with (its STAYUP_VERSION: a roll sets the new one). */
  version?: string;
  web: ChildProcess;
  redis: ChildProcess;
  /** Its health check; undefined when the group has none. */
  healthCheck?: InstanceHealthCheck;
  /** Whether its web process compiled from the bundle's V8 code cache (undefined: started without one). */
  codeCache?: CodeCacheOutcome;
  /** Re-judges an instance unhealthy during its grace period once the period is over. */
  graceTimer?: NodeJS.Timeout;
}

/** The instance's health: its check's, or healthy as soon as it listens when the group has no check. */
export const instanceHealth = (i: SingleInstance) => i.healthCheck?.health ?? "healthy";

const newInstanceId = () => `i-${randomBytes(8).toString("hex")}`;
const exited = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;
const waitExit = (p: ChildProcess) =>
  exited(p) ? Promise.resolve() : new Promise<void>((resolve) => p.once("exit", () => resolve()));

/**
 * Seed 003 locally: an Auto Scaling group of exactly one instance, no load balancer. When the
 * instance dies (either of its processes), the group finishes it off, detaches the data volume,
 * launches a replacement that attaches the volume, starts its Redis on the same append-only file
 * and re-associates the stable address. Between the two, the address answers nothing: the downtime
 * a single instance cannot avoid.
 */
export class SingleInstanceGroup {
  instance?: SingleInstance;
  private stopped = false;
  private launching?: Promise<void>;
  private consecutiveFailures = 0;
  /** The settings (and version) of the version being run; a roll changes them. */
  private versionSettings: Record<string, string> = {};
  /** A failure is an event, then a retry: it never ends the runtime. */
  private readonly guard: ControllerGuard;

  constructor(readonly options: SingleInstanceGroupOptions) {
    this.guard = new ControllerGuard({ controller: "single-instance-group", events: options.events });
    try {
      ensurePrivateDir(options.logDir);
    } catch (error) {
      this.guard.report(error, "instances run without a log file while it cannot be opened");
    }
  }

  /** The running instance, if any (a method, so callers re-read it after awaiting). */
  current(): SingleInstance | undefined {
    return this.instance;
  }

  start(): Promise<void> {
    this.stopped = false;
    return this.ensureInstance();
  }

  /** Launches one instance unless one runs or is launching (the group's desired capacity of 1). */
  private ensureInstance(): Promise<void> {
    if (this.stopped || this.instance) return Promise.resolve();
    this.launching ??= this.launchWithRetry().finally(() => {
      this.launching = undefined;
    });
    return this.launching;
  }

  private async launchWithRetry(): Promise<void> {
    while (!this.stopped && !this.instance) {
      try {
        await this.launch();
        this.consecutiveFailures = 0;
      } catch (error) {
        this.consecutiveFailures++;
        this.options.events.publish({
          type: "instance.launch-failed",
          instanceId: "(new)",
          az: this.options.az,
          reason: (error as Error).message,
        });
        // A crash loop must not fork-bomb the laptop.
        await sleep(Math.min(100 * 2 ** this.consecutiveFailures, 5000));
      }
    }
  }

  /** The launch step: volume, its Redis, the web process, then the address (what user data does on AWS). */
  private async launch(): Promise<void> {
    const { az, address, events } = this.options;
    const instanceId = newInstanceId();
    const redisPort = await findFreePort();
    // Redis and the web process boot in parallel (the service waits for Redis before listening):
    // every millisecond here is downtime clients see.
    const redisStarting = this.startRedisOnVolume(instanceId, redisPort);
    redisStarting.catch(() => undefined);
    const log = this.openLog(instanceId);
    // What its environment says: a roll's version over the stack's own.
    const version =
      this.versionSettings.STAYUP_VERSION ?? this.options.instanceEnvironment?.().STAYUP_VERSION;
    const environment = {
      ...this.options.instanceEnvironment?.(),
      ...this.versionSettings,
      STAYUP_INSTANCE_ID: instanceId,
      STAYUP_AZ: az,
      STAYUP_REGION: this.options.region,
      STAYUP_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      ...(this.options.redisPassword ? { STAYUP_REDIS_PASSWORD: this.options.redisPassword } : {}),
      // Any service's Redis: the instance's own redis-server (as `localhost` on the EC2 instance).
      REDIS_URL: redisUrl("127.0.0.1", redisPort, this.options.redisPassword),
      HOST: "127.0.0.1",
    };
    const service = this.options.service;
    let web: ChildProcess;
    let servicePort = 0;
    if (service) {
      // The user's service may connect to Redis as it starts: it starts once Redis answers (a
      // failed Redis is reported by the await below).
      await redisStarting.catch(() => undefined);
      servicePort = await findFreePort();
      web = withPrivateUmask(() =>
        spawnService(service, instanceEnvironment({ ...environment, PORT: String(servicePort) }), log),
      );
      web.on("error", () => undefined);
    } else {
      // Through the bundle's V8 code cache when it was built with one: less compiling, less downtime.
      const entry = instanceEntry(this.options.serviceEntry);
      // Under umask 077, with an environment from a list, not the CLI's (see instance-environment.ts).
      web = withPrivateUmask(() =>
        fork(entry.modulePath, entry.args, {
          env: instanceEnvironment({ ...environment, PORT: "0" }),
          stdio: ["ignore", log, log, "ipc"],
          execArgv: [],
        }),
      );
    }
    if (log !== "ignore") closeSync(log); // the child has its own copy; ours would stay open for the runtime's life
    // Listened for at once: the service may report its port before Redis's start resolves here.
    let codeCache: CodeCacheOutcome | undefined;
    const listening = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("did not start listening within 10 s")), 10_000);
      web.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`exited during launch (${signal ?? `code ${code}`})`));
      });
      if (service) {
        // A service in any language cannot report its port: it is up once PORT accepts connections.
        waitListening("127.0.0.1", servicePort, web, 10_000).then(
          () => {
            clearTimeout(timer);
            resolve(servicePort);
          },
          (error: unknown) => {
            clearTimeout(timer);
            reject(error as Error);
          },
        );
      }
      web.on("message", (m: { type?: string; port?: number; outcome?: CodeCacheOutcome }) => {
        if (m?.type === "code-cache") codeCache = m.outcome;
        if (m?.type === "listening" && typeof m.port === "number") {
          clearTimeout(timer);
          resolve(m.port);
        }
      });
    });
    listening.catch(() => undefined);
    let redis: ChildProcess;
    try {
      redis = await redisStarting;
    } catch (error) {
      web.kill("SIGKILL");
      await waitExit(web);
      throw error;
    }
    let port: number;
    try {
      port = await listening;
    } catch (error) {
      web.kill("SIGKILL");
      await this.finishOff(instanceId, web, redis, "launch failed");
      throw error;
    }
    web.removeAllListeners("exit");
    // What the service's command started must not outlive it (its process group, see service-command.ts).
    if (service) web.once("exit", () => signalService(web, "SIGKILL"));
    const instance: SingleInstance = {
      instanceId,
      az,
      pid: web.pid ?? 0,
      port,
      redisPort,
      redisPid: redis.pid ?? 0,
      launchedAt: Date.now(),
      version,
      web,
      redis,
      codeCache,
    };
    this.instance = instance;
    events.publish({ type: "instance.launched", instanceId, az, pid: instance.pid, port });
    // Seed 003's user data: the new instance associates the Elastic IP with itself at boot.
    address.associate({ instanceId, host: "127.0.0.1", port });
    const died = (what: string) => (code: number | null, signal: string | null) =>
      void this.instanceDied(instance, what, code, signal).catch((error: unknown) => {
        this.guard.report(error, "a replacement is launched");
        return this.ensureInstance();
      });
    web.once("exit", died("web service"));
    redis.once("exit", died("redis-server"));
    // The web process may have exited while this launch awaited: its exit event is then past.
    if (exited(web)) void this.instanceDied(instance, "web service", web.exitCode, web.signalCode);
    else if (exited(redis))
      void this.instanceDied(instance, "redis-server", redis.exitCode, redis.signalCode);
    else this.startHealthCheck(instance);
  }

  /**
   * The instance's own health check (no load balancer does it): an instance unhealthy after its
   * grace period is terminated and replaced, as the ASG does with a health check; a roll waits for
   * the new instance to turn healthy.
   */
  private startHealthCheck(instance: SingleInstance): void {
    const settings = this.options.healthCheck;
    if (!settings) return;
    const { events } = this.options;
    const graceMs = this.options.healthCheckGracePeriodMs ?? 0;
    const replaceIfUnhealthy = () => {
      if (this.instance !== instance || instance.healthCheck?.health !== "unhealthy") return;
      const left = instance.launchedAt + graceMs - Date.now();
      if (left > 0) {
        clearTimeout(instance.graceTimer);
        instance.graceTimer = setTimeout(replaceIfUnhealthy, left);
        return;
      }
      events.publish({
        type: "instance.terminating",
        instanceId: instance.instanceId,
        az: instance.az,
        reason: `unhealthy: ${instance.healthCheck.lastFailure ?? "health check failed"}`,
      });
      instance.web.kill("SIGTERM");
    };
    instance.healthCheck = new InstanceHealthCheck(
      { host: "127.0.0.1", port: instance.port },
      settings,
      (health, reason) => {
        if (this.instance !== instance) return;
        if (health === "healthy")
          events.publish({ type: "target.healthy", instanceId: instance.instanceId, az: instance.az });
        else if (health === "unhealthy") {
          events.publish({
            type: "target.unhealthy",
            instanceId: instance.instanceId,
            az: instance.az,
            reason: reason ?? "health check failed",
          });
          replaceIfUnhealthy();
        }
      },
    );
    instance.healthCheck.start();
  }

  private stopHealthCheck(instance: SingleInstance): void {
    instance.healthCheck?.stop();
    clearTimeout(instance.graceTimer);
  }

  /** The instance's log file; without one (it cannot be opened) the instance still runs. */
  private openLog(instanceId: string): number | "ignore" {
    try {
      return openPrivateFile(path.join(this.options.logDir, `${instanceId}.log`), "a");
    } catch (error) {
      this.guard.report(
        new Error(`cannot open the log of ${instanceId}: ${(error as Error).message}`),
        "launched without a log file; the next launch tries again",
      );
      return "ignore";
    }
  }

  /** Attaches the volume (waiting while the old instance still holds it) and starts Redis on it. */
  private async startRedisOnVolume(instanceId: string, redisPort: number): Promise<ChildProcess> {
    const { volume } = this.options;
    const deadline = Date.now() + 10_000;
    // The holder's pid is its Redis, the process that writes the volume; it is detached only after
    // that Redis exited. This group launches one instance at a time, so no other Redis can open the
    // directory between the wait below and the attach.
    const redisDir = path.join(volume.dataDir, "redis");
    ensurePrivateDir(redisDir);
    for (;;) {
      const holder = volume.attachment;
      if (!holder || holder.instanceId === instanceId) break;
      try {
        process.kill(holder.pid, 0);
      } catch {
        break; // dead holder: attach() detaches it
      }
      if (Date.now() > deadline) {
        throw new VolumeInUseError(volume.volumeId, holder);
      }
      await sleep(25);
    }
    const password = this.options.redisPassword;
    // The password in a 0600 config file (first argument), not on the command line `ps` shows.
    const auth = password ? [writeNodeAuthConfig(redisDir, password)] : [];
    const redis = await startRedisProcess(
      "127.0.0.1",
      redisPort,
      [...auth, "--port", String(redisPort), "--bind", "127.0.0.1", ...persistenceArgs(redisDir)],
      password,
    );
    volume.attach(instanceId, redis.pid ?? 0);
    const pid = redis.pid;
    const { processes } = this.options;
    if (processes && pid) {
      processes.add({ pid, kind: "redis", name: `${instanceId}-redis`, port: redisPort, dir: redisDir });
      redis.once("exit", () => processes.remove(pid));
    }
    return redis;
  }

  private async instanceDied(
    instance: SingleInstance,
    what: string,
    code: number | null,
    signal: string | null,
  ): Promise<void> {
    if (this.instance !== instance) return;
    this.instance = undefined;
    this.stopHealthCheck(instance);
    const { events, address } = this.options;
    address.disassociate(instance.instanceId, `${what} exited`);
    // The instance is gone as a whole: its other process goes too (a dead EC2 instance takes both).
    instance.web.kill("SIGKILL");
    instance.redis.kill("SIGKILL");
    await this.finishOff(instance.instanceId, instance.web, instance.redis, `${what} exited`);
    events.publish({
      type: "instance.terminated",
      instanceId: instance.instanceId,
      az: instance.az,
      pid: instance.pid,
      code,
      signal,
      expected: this.stopped,
    });
    if (this.stopped) return;
    if (Date.now() - instance.launchedAt < 2000) this.consecutiveFailures++;
    const before = instance.instanceId;
    await this.ensureInstance();
    const replacement = this.current();
    if (replacement) {
      events.publish({
        type: "instance.replaced",
        instanceId: before,
        replacementId: replacement.instanceId,
        az: instance.az,
      });
    }
  }

  /** Waits for both processes to exit, then detaches the volume: never attached to two at once. */
  private async finishOff(instanceId: string, web: ChildProcess, redis: ChildProcess, reason: string) {
    if (!exited(redis)) redis.kill("SIGKILL");
    await Promise.all([waitExit(web), waitExit(redis)]);
    this.options.volume.detach(instanceId, reason);
  }

  /**
   * A roll of the single instance: two instances cannot share the volume, so the old one is stopped
   * (it drains) before the new version starts on the volume: downtime, which the drill measures. A
   * new version that fails to launch twice, or is not healthy within `healthyTimeoutMs`, is rolled
   * back: the previous version is launched again.
   */
  async roll(
    artifact: string,
    settings: Record<string, string>,
    {
      timeoutMs = 120_000,
      healthyTimeoutMs = 10_000,
      signal,
    }: { timeoutMs?: number; healthyTimeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<{ replaced: string[]; rolledBack: boolean; reason?: string; stopped?: boolean }> {
    const old = this.instance;
    const replaced = old ? [old.instanceId] : [];
    const previous = { artifact: this.options.serviceEntry, settings: this.versionSettings };
    this.options.serviceEntry = artifact;
    this.versionSettings = { ...settings };
    this.consecutiveFailures = 0;
    if (old) {
      old.web.kill("SIGTERM");
      await waitExit(old.web);
    }
    const deadline = Date.now() + timeoutMs;
    let reason: string | undefined;
    // When the first new instance listened: a replacement of it (unhealthy past its grace period)
    // does not restart the clock.
    let newSince: number | undefined;
    for (;;) {
      const now = this.instance;
      if (this.stopped) return { replaced, rolledBack: false, reason: "the stack stopped during the roll" };
      if (now && now !== old) {
        if (instanceHealth(now) === "healthy") return { replaced, rolledBack: false };
        newSince ??= now.launchedAt;
        if (Date.now() - newSince > healthyTimeoutMs) {
          reason = `new instance ${now.instanceId} not healthy within ${healthyTimeoutMs / 1000} s (${now.healthCheck?.lastFailure ?? "no passing check"})`;
          break;
        }
      }
      if (this.consecutiveFailures >= 2) {
        reason = `the new version failed to launch ${this.consecutiveFailures} times`;
        break;
      }
      if (Date.now() > deadline) {
        reason = `not finished within ${timeoutMs / 1000} s`;
        break;
      }
      // Stopped (its requester asked, or went away): the same rollback as a failed version's.
      if (signal?.aborted) {
        // The stack says why (the abort's reason): this group only knows it was stopped.
        reason = "stopped";
        break;
      }
      await sleep(50);
    }
    // Rollback: the previous version back on the volume (its launch is the group's usual one).
    this.options.serviceEntry = previous.artifact;
    this.versionSettings = previous.settings;
    const failed = this.instance !== old ? this.instance : undefined;
    if (failed) {
      this.options.events.publish({
        type: "instance.terminating",
        instanceId: failed.instanceId,
        az: failed.az,
        reason: signal?.aborted ? "rolled back: the roll was stopped" : "rolled back: its version failed",
      });
      failed.web.kill("SIGTERM");
    }
    const rollbackDeadline = Date.now() + 60_000;
    while (!this.stopped && Date.now() < rollbackDeadline) {
      const now = this.instance;
      if (now && now !== old && now !== failed && instanceHealth(now) === "healthy") break;
      await sleep(50);
    }
    return { replaced, rolledBack: true, reason, ...(signal?.aborted ? { stopped: true } : {}) };
  }

  /** Stops the instance gracefully: the web service drains, Redis flushes its append-only file. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.launching;
    const instance = this.instance;
    if (!instance) return;
    this.stopHealthCheck(instance);
    this.options.events.publish({
      type: "instance.terminating",
      instanceId: instance.instanceId,
      az: instance.az,
      reason: "stack stopping",
    });
    instance.web.kill("SIGTERM");
    const kill = setTimeout(() => instance.web.kill("SIGKILL"), 10_000);
    await waitExit(instance.web);
    clearTimeout(kill);
    instance.redis.kill("SIGTERM");
    const killRedis = setTimeout(() => instance.redis.kill("SIGKILL"), 5000);
    await waitExit(instance.redis);
    clearTimeout(killRedis);
    // instanceDied (from the exit listeners) detaches and records the termination.
    while (this.options.volume.attachment?.instanceId === instance.instanceId) await sleep(10);
  }
}
