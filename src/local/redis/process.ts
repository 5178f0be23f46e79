import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
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

/** Starts `redis-server` with `args` (a config file first for Sentinel) and waits for PING. */
export async function startRedisProcess(
  host: string,
  port: number,
  args: string[],
  password?: string,
): Promise<ChildProcess> {
  // Under umask 077: what redis-server creates (append-only files, rdb, Sentinel's rewritten
  // sentinel.conf with the password in it) is the user's alone. Its environment is the basics only.
  const child = withPrivateUmask(() =>
    spawn("redis-server", [...args, "--maxclients", String(localRedisMaxClients)], {
      stdio: ["ignore", "ignore", "pipe"],
      env: inheritedEnvironment(),
    }),
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new StayupError(
        `redis-server on port ${port} exited at start (${child.signalCode ?? `code ${child.exitCode}`}): ${stderr.trim()}`,
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
