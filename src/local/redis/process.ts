import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, statSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import { StayupError } from "../../shared/errors.ts";
import { assertPortFree, findExecutable, sleep } from "../../shared/net.ts";
import { privateSecret, withPrivateUmask, writePrivateFileAtomic } from "../../shared/private-file.ts";
import { inheritedEnvironment } from "../instance-environment.ts";

/**
 * The password of the local Redis and Sentinels: generated once, kept 0600 under the state folder,
 * reused on restart (so a node left from an earlier run and its data stay reachable).
 */
export const localRedisPassword = (stateDir: string): string =>
  privateSecret(path.join(stateDir, "redis", "password"), () => randomBytes(24).toString("hex"));

/**
 * A 0600 config file with the password for a node, passed to redis-server as its config file:
 * on the command line it would show in `ps` to every local user.
 */
export function writeNodeAuthConfig(dir: string, password: string): string {
  const file = path.join(dir, "auth.conf");
  writePrivateFileAtomic(file, `requirepass ${password}\nmasterauth ${password}\n`);
  return file;
}

/** What can be checked before anything starts: the binary, and the first node's port. */
export async function redisPreflight(host: string, port: number): Promise<void> {
  assertRedisInstalled();
  await assertPortFree(
    host,
    port,
    "Redis",
    "set redis.localPort in stayup.config.ts to a free port (0 picks one), or stop what holds it",
  );
}

export function assertRedisInstalled(): void {
  if (!findExecutable("redis-server")) {
    throw new StayupError(
      "redis-server was not found on PATH",
      "install Redis: `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)",
    );
  }
}

/**
 * Every local redis-server's (nodes and Sentinels) limit of clients: its default, 10 000, costs each
 * process a table it fills at start (0.3 MiB of its 12 MiB resident, ×12 processes in the default
 * stack: issue 25, item 12); the stack's own clients are tens (each instance's, the runtime's).
 */
export const localRedisMaxClients = 1000;

/** Above this size a node's or Sentinel's log is moved to `<file>.1` at its next start. */
export const REDIS_LOG_ROTATE_BYTES = 1024 * 1024;

/**
 * The private log file of the node or Sentinel whose folder is `dir` (`redis.log`), rotated once
 * it passes REDIS_LOG_ROTATE_BYTES: what says why a node looked down (a slow fsync, a full sync)
 * or what a Sentinel decided, kept after the process is gone.
 */
export function redisLogFile(dir: string): string {
  // Absolute: redis-server applies `dir` (a chdir into the node's folder) before `logfile`, so a
  // path relative to the stack's folder (`.stayup/...`, as in a project) would not be found.
  const file = path.resolve(dir, "redis.log");
  try {
    if (statSync(file).size > REDIS_LOG_ROTATE_BYTES) renameSync(file, `${file}.1`);
  } catch {
    // no log yet
  }
  return file;
}

/** The last `count` lines of a Redis log file (empty when there is none). */
export function lastLogLines(file: string, count = 10): string[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, "utf8");
  return text
    .slice(-64 * 1024)
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(-count);
}

/**
 * Starts `redis-server` with `args` (a config file first for Sentinel) and waits for PING. With
 * `logFile`, Redis logs there (`--logfile`), and an exit at start quotes the log's last lines:
 * without it, Redis logs to stdout, which is not kept.
 */
export async function startRedisProcess(
  host: string,
  port: number,
  args: string[],
  password?: string,
  logFile?: string,
): Promise<ChildProcess> {
  // Under umask 077: what redis-server creates (append-only files, rdb, Sentinel's rewritten
  // sentinel.conf with the password in it) is the user's alone. Its environment is the basics only.
  const child = withPrivateUmask(() =>
    spawn(
      "redis-server",
      [...args, "--maxclients", String(localRedisMaxClients), ...(logFile ? ["--logfile", logFile] : [])],
      {
        stdio: ["ignore", "ignore", "pipe"],
        env: inheritedEnvironment(),
      },
    ),
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      // Config errors go to stderr; a port it cannot bind, to the log.
      const logged = logFile ? lastLogLines(logFile, 5) : [];
      const said = [stderr.trim(), ...logged].filter((line) => line !== "").join(" | ");
      throw new StayupError(
        `redis-server on port ${port} exited at start (${child.signalCode ?? `code ${child.exitCode}`}): ${said || "it said nothing"}${logFile ? ` (log: ${logFile})` : ""}`,
        "a port clash or an unwritable data directory are the usual causes",
      );
    }
    const probe = new Redis({
      host,
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      password,
      // Another program holding the port accepts the probe and never answers: without these the
      // probe waited forever and the exit of redis-server (the clash) was never reported.
      connectTimeout: 1000,
      commandTimeout: 1000,
    });
    probe.on("error", () => undefined); // a refused probe is expected while Redis boots
    try {
      await probe.connect();
      if ((await probe.ping()) === "PONG") return child;
    } catch {
      // not up yet
    } finally {
      probe.disconnect();
    }
    await sleep(50);
  }
  child.kill("SIGKILL");
  throw new StayupError(
    `redis-server on port ${port} did not answer PING within 10 s`,
    "check its data directory",
  );
}

/** SIGTERM (Redis flushes its append-only file and exits), SIGKILL after 5 s. */
export async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** Persistence as ElastiCache's AOF default: an append-only file fsynced every second. */
export const persistenceArgs = (dir: string) => [
  "--dir",
  dir,
  "--appendonly",
  "yes",
  "--appendfsync",
  "everysec",
  "--save",
  "",
];
