/**
 * The seam between the instance group's decisions and what an instance is: a forked process
 * locally (process-launcher.ts); the single instance and ECS tasks are other implementations.
 */

export interface LaunchSpec {
  instanceId: string;
  az: string;
  region: string;
  /** The service version this instance runs (a rolling deploy launches a new one). */
  version: string;
  /** What to run: the bundled service's entry file for a process. */
  artifact: string;
  /** Environment of the instance (Redis endpoint and the like), on top of its identity. */
  environment: Record<string, string>;
  workingDirectory: string;
  /** Where its output goes. */
  logFile: string;
}

export interface InstanceExit {
  code: number | null;
  signal: string | null;
}

/** A launched instance, once it listens. */
export interface InstanceHandle {
  readonly instanceId: string;
  readonly az: string;
  readonly host: string;
  readonly port: number;
  /** The OS process id where there is one (0 otherwise): CPU sampling, drills. */
  readonly pid: number;
  /** Settles once, when the instance stops for any reason. */
  readonly exited: Promise<InstanceExit>;
  readonly alive: boolean;
  terminate(signal: NodeJS.Signals): void;
  /** How busy its event loop was lately (0..1), where the instance reports it. */
  readonly eventLoopUtilization?: number;
  /** A message over the runtime's own channel to the instance (a drill's fault), where there is one. */
  send?(message: object): boolean;
}

export interface Launcher {
  /** Starts an instance; resolves once it listens, rejects (leaving nothing running) if it cannot. */
  launch(spec: LaunchSpec): Promise<InstanceHandle>;
}
