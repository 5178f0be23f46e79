import { accessSync, constants, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { StayupError } from "./errors.ts";

/** A port a stack needs that cannot be had (taken, or not allowed): see assertPortsFree. */
export class PortUnavailableError extends StayupError {
  constructor(message: string, fix: string) {
    super(message, fix);
    this.name = "PortUnavailableError";
  }
}

/** Resolves with the port if it can be bound on host, rejects with a clear error if it is taken. */
export function assertPortFree(host: string, port: number, what: string, fix: string): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") {
        reject(
          new PortUnavailableError(
            `${what}: port ${port} on ${host} is already in use by another process`,
            fix,
          ),
        );
      } else if (error.code === "EACCES") {
        reject(new PortUnavailableError(`${what}: not allowed to listen on ${host}:${port}`, fix));
      } else {
        reject(new PortUnavailableError(`${what}: cannot listen on ${host}:${port}: ${error.message}`, fix));
      }
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/**
 * Runs every port check and fails once, naming every port taken with the option that frees it: a
 * second stack clashes on several ports at once, and one failed start per port is two too many.
 * Any other failure (Redis not installed) is thrown as it is, at once.
 */
export async function assertPortsFree(
  checks: { check: () => Promise<void>; option: string; setting: string }[],
): Promise<void> {
  const taken: { error: PortUnavailableError; option: string; setting: string }[] = [];
  for (const { check, option, setting } of checks) {
    try {
      await check();
    } catch (error) {
      if (!(error instanceof PortUnavailableError)) throw error;
      taken.push({ error, option, setting });
    }
  }
  const first = taken[0];
  if (!first) return;
  const options = [...new Set(taken.map((t) => `${t.option} 0`))].join(" ");
  const settings = [...new Set(taken.map((t) => t.setting))].join(", ");
  if (taken.length === 1) {
    throw new PortUnavailableError(
      first.error.message,
      `pass ${options} (a free port), or set ${settings} in stayup.config.ts, or stop what holds it`,
    );
  }
  throw new PortUnavailableError(
    `${taken.length} ports the stack needs are taken:\n${taken.map((t) => `  ✗ ${t.error.message} (${t.option})`).join("\n")}`,
    `pass ${options} (free ports), or set ${settings} in stayup.config.ts, or stop what holds them`,
  );
}

/** Where the kernel's ephemeral range starts (ports it hands to outgoing connections). */
function ephemeralRangeStart(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 0) return low;
  } catch {
    // not Linux: the usual range's start (IANA's is 49152; Linux's default is lower)
  }
  return 32768;
}

const canListen = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });

/**
 * A port free right now, for a server that binds it a moment later (redis-server, a service):
 * picked at random below the ephemeral range, because a port the kernel hands out for port 0 comes
 * from that range and may be taken meanwhile by any outgoing connection on the machine (seen in CI:
 * "redis-server on port 41889 exited at start"). The kernel's pick when that range leaves no room.
 */
export async function findFreePort(host = "127.0.0.1"): Promise<number> {
  const lowest = 10_000;
  const below = ephemeralRangeStart();
  if (below - lowest >= 1000) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = lowest + Math.floor(Math.random() * (below - lowest));
      if (await canListen(host, port)) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Absolute path of an executable on PATH, or undefined. */
export function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
