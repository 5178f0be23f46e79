import { type ChildProcess, fork } from "node:child_process";
import { closeSync } from "node:fs";
import { findFreePort } from "../../shared/net.ts";
import { openPrivateFile, withPrivateUmask } from "../../shared/private-file.ts";
import { instanceEnvironment } from "../instance-environment.ts";
import type { InstanceExit, InstanceHandle, Launcher, LaunchSpec } from "./launcher.ts";
import { type ServiceStart, signalService, spawnService, waitListening } from "./service-command.ts";

export interface ProcessLauncherOptions {
  /** The address instances listen on. */
  host?: string;
  /** A process that does not listen within this long is killed and the launch fails. */
  startTimeoutMs?: number;
  /** Told when an instance's log file cannot be opened; the instance then runs without one. */
  onLogUnavailable?: (instanceId: string, error: Error) => void;
  /** The user's service (webService.start): run with its command instead of the counter's bundle. */
  service?: ServiceStart;
}

class ProcessInstance implements InstanceHandle {
  readonly exited: Promise<InstanceExit>;
  constructor(
    readonly instanceId: string,
    readonly az: string,
    readonly host: string,
    readonly port: number,
    private readonly child: ChildProcess,
    exited: Promise<InstanceExit>,
    /** A command's process group is signalled whole (what it started stops with it). */
    private readonly group = false,
  ) {
    this.exited = exited;
  }
  eventLoopUtilization?: number;
  get pid(): number {
    return this.child.pid ?? 0;
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  terminate(signal: NodeJS.Signals): void {
    if (!this.alive) return;
    if (this.group) signalService(this.child, signal);
    else this.child.kill(signal);
  }
  send(message: object): boolean {
    return this.alive && this.child.connected && this.child.send(message);
  }
}

/** Instances as forked Node processes running the service bundle; each reports its port over IPC. */
export class ProcessLauncher implements Launcher {
  constructor(private readonly options: ProcessLauncherOptions = {}) {}

  launch(spec: LaunchSpec): Promise<InstanceHandle> {
    const host = this.options.host ?? "127.0.0.1";
    const startTimeoutMs = this.options.startTimeoutMs ?? 10_000;
    let log: number | "ignore";
    try {
      log = openPrivateFile(spec.logFile, "a");
    } catch (error) {
      this.options.onLogUnavailable?.(spec.instanceId, error as Error);
      log = "ignore";
    }
    if (this.options.service)
      return this.launchService(spec, this.options.service, host, startTimeoutMs, log);
    let child: ChildProcess;
    try {
      const stdio = ["ignore", log, log, "ipc"] as const;
      // Under umask 077 (what the instance writes, its code cache, stays private), with an
      // environment built from a list (not the CLI's: no AWS_* or NODE_OPTIONS of the caller).
      child = withPrivateUmask(() =>
        fork(spec.artifact, [], {
          cwd: spec.workingDirectory,
          env: instanceEnvironment({
            ...spec.environment,
            STAYUP_INSTANCE_ID: spec.instanceId,
            STAYUP_AZ: spec.az,
            STAYUP_REGION: spec.region,
            STAYUP_VERSION: spec.version,
            HOST: host,
            PORT: "0",
          }),
          stdio: [...stdio],
          execArgv: [],
        }),
      );
    } finally {
      if (log !== "ignore") closeSync(log);
    }
    const exited = new Promise<InstanceExit>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (reason: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new Error(reason));
      };
      const timer = setTimeout(
        () => fail(`did not start listening within ${startTimeoutMs / 1000} s`),
        startTimeoutMs,
      );
      child.once("error", (error) => fail(error.message));
      void exited.then(({ code, signal }) => fail(`exited during launch (${signal ?? `code ${code}`})`));
      child.on("message", (message: { type?: string; port?: number }) => {
        if (settled || message?.type !== "listening" || typeof message.port !== "number") return;
        settled = true;
        clearTimeout(timer);
        const instance = new ProcessInstance(spec.instanceId, spec.az, host, message.port, child, exited);
        child.on("message", (m: { type?: string; eventLoop?: number }) => {
          if (m?.type === "utilization" && typeof m.eventLoop === "number")
            instance.eventLoopUtilization = m.eventLoop;
        });
        resolve(instance);
      });
    });
  }

  /**
   * The user's service: a free port chosen here and given in PORT (it cannot report one), its
   * command spawned in its folder, ready once the port accepts connections.
   */
  private async launchService(
    spec: LaunchSpec,
    service: ServiceStart,
    host: string,
    startTimeoutMs: number,
    log: number | "ignore",
  ): Promise<InstanceHandle> {
    let child: ChildProcess;
    let port: number;
    try {
      port = await findFreePort(host);
      child = withPrivateUmask(() => spawnService(service, serviceEnvironment(spec, host, port), log));
    } finally {
      if (log !== "ignore") closeSync(log);
    }
    const exited = new Promise<InstanceExit>((resolve) =>
      child.once("exit", (code, signal) => {
        // What the leader started must not outlive it (a port held by an orphan, CPU burnt).
        signalService(child, "SIGKILL");
        resolve({ code, signal });
      }),
    );
    child.on("error", () => undefined);
    try {
      await waitListening(host, port, child, startTimeoutMs);
    } catch (error) {
      signalService(child, "SIGKILL");
      throw error;
    }
    return new ProcessInstance(spec.instanceId, spec.az, host, port, child, exited, true);
  }
}

/**
 * The environment of one instance of the user's service: the inherited basics, the stack's (REDIS_URL
 * and the rest), its identity, and where to listen: PORT on HOST (loopback).
 */
export function serviceEnvironment(spec: LaunchSpec, host: string, port: number): Record<string, string> {
  return instanceEnvironment({
    ...spec.environment,
    STAYUP_INSTANCE_ID: spec.instanceId,
    STAYUP_AZ: spec.az,
    STAYUP_REGION: spec.region,
    STAYUP_VERSION: spec.version,
    HOST: host,
    PORT: String(port),
  });
}
