import { type ChildProcess, fork } from "node:child_process";
import { closeSync } from "node:fs";
import { openPrivateFile, withPrivateUmask } from "../../shared/private-file.ts";
import { instanceEnvironment } from "../instance-environment.ts";
import type { InstanceExit, InstanceHandle, Launcher, LaunchSpec } from "./launcher.ts";

export interface ProcessLauncherOptions {
  /** The address instances listen on. */
  host?: string;
  /** A process that does not listen within this long is killed and the launch fails. */
  startTimeoutMs?: number;
  /** Told when an instance's log file cannot be opened; the instance then runs without one. */
  onLogUnavailable?: (instanceId: string, error: Error) => void;
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
    if (this.alive) this.child.kill(signal);
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
}
