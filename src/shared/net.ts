import { accessSync, constants } from "node:fs";
import net from "node:net";
import path from "node:path";
import { StayupError } from "./errors.ts";

/** Resolves with the port if it can be bound on host, rejects with a clear error if it is taken. */
export function assertPortFree(host: string, port: number, what: string, fix: string): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") {
        reject(new StayupError(`${what}: port ${port} on ${host} is already in use by another process`, fix));
      } else if (error.code === "EACCES") {
        reject(new StayupError(`${what}: not allowed to listen on ${host}:${port}`, fix));
      } else {
        reject(new StayupError(`${what}: cannot listen on ${host}:${port}: ${error.message}`, fix));
      }
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/** A port the kernel says is free right now (for redis-server, which cannot report its own). */
export function findFreePort(host = "127.0.0.1"): Promise<number> {
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
