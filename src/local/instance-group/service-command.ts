import { type ChildProcess, spawn } from "node:child_process";
import { statSync } from "node:fs";
import net from "node:net";
import { StayupError } from "../../shared/errors.ts";
import { sleep } from "../../shared/net.ts";

/**
 * The user's own service (the description's `webService.start`): how one instance of it is
 * started, and known to listen. The built-in counter is forked and reports its port over IPC; a
 * service in any language gets its port in PORT and is ready once that port accepts a connection.
 */

export interface ServiceStart {
  command: string;
  /** Absolute (the description's loader resolves it against the description's folder). */
  workingDirectory: string;
}

/** Only these characters and blanks: a command without shell syntax, run without a shell. */
const plainWords = /^[\w./:=@%+,-]+$/;

/**
 * How `command` is started: split on blanks and run directly (`node server.js`: the process is the
 * service, no shell between); with shell syntax (quotes, `$VAR`, `&&`, pipes, `~`...) by
 * `/bin/sh -c`, which the user then relies on.
 */
export function commandLine(command: string): { file: string; args: string[]; shell: boolean } {
  const words = command.trim().split(/\s+/);
  if (words.length > 0 && words.every((w) => plainWords.test(w))) {
    return { file: words[0] as string, args: words.slice(1), shell: false };
  }
  return { file: "/bin/sh", args: ["-c", command], shell: true };
}

/** Refuses to start a stack whose service folder is missing (`stayup up` checks it before anything starts). */
export function assertServiceStartable(start: ServiceStart | undefined): void {
  if (!start) return;
  let isDir = false;
  try {
    isDir = statSync(start.workingDirectory).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) {
    throw new StayupError(
      `webService.start.workingDirectory: ${start.workingDirectory} is not a folder`,
      "set it to the service's folder, relative to the stack description's folder (default: that folder)",
    );
  }
}

/**
 * Starts one instance of the service as its own process group (`detached`), so that stopping it
 * stops what it started too (`npm start` → sh → node): see `signalService`.
 */
export function spawnService(
  start: ServiceStart,
  env: Record<string, string>,
  log: number | "ignore",
): ChildProcess {
  const { file, args } = commandLine(start.command);
  return spawn(file, args, {
    cwd: start.workingDirectory,
    env,
    stdio: ["ignore", log, log],
    detached: true,
  });
}

/** Signals the service's whole process group (its leader is the spawned process). */
export function signalService(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone already
  }
}

/** Resolves once `host:port` accepts a connection; rejects when the process exits or time runs out. */
export async function waitListening(
  host: string,
  port: number,
  child: ChildProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  let spawnError: string | undefined;
  child.once("exit", (code, signal) => (exited = signal ?? `code ${code}`));
  child.once("error", (error) => (spawnError = error.message));
  for (;;) {
    if (spawnError) throw new Error(`could not start: ${spawnError}`);
    if (exited !== undefined || child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited during launch (${exited ?? child.signalCode ?? `code ${child.exitCode}`})`);
    }
    if (await accepts(host, port)) return;
    if (Date.now() > deadline) {
      throw new Error(`did not listen on ${host}:${port} (its PORT) within ${timeoutMs / 1000} s`);
    }
    await sleep(50);
  }
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(500);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}
