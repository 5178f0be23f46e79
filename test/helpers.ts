import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { tmpdir } from "node:os";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import type { DrillReport } from "../src/drills/report.ts";
import { stateFileName } from "../src/local/control-plane/state-file.ts";
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";
import { localRedisPassword } from "../src/local/redis/process.ts";
import { RedisReplicationController } from "../src/local/redis/replication.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { findFreePort, sleep } from "../src/shared/net.ts";
import type { CodeCacheOutcome } from "../src/web-service/code-cache.ts";

// Here for every suite; in a module of its own for test/balancer-process.ts, whose memory is measured.
export { alwaysRoutable } from "./target-source.ts";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const cliPath = path.join(repoRoot, "bin/stayup.mjs");
export const configPath = path.join(repoRoot, "stayup.config.ts");

export const tempDir = (prefix = "stayup-test-") => mkdtempSync(path.join(tmpdir(), prefix));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI as a user would, with a time bound. */
export function runCli(
  args: string[],
  options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: options.env,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * `stayup up`'s arguments (after the CLI's path) for `config`, the repository's description by
 * default, in `stateDir`: every port 0 (stayup picks free ones) unless a Redis or DNS port is given.
 */
export function upArgs(
  stateDir: string,
  options: { config?: string; redisPort?: number | string; dnsPort?: number } = {},
): string[] {
  return [
    "up",
    "--config",
    options.config ?? configPath,
    "--state-dir",
    stateDir,
    "--port",
    "0",
    "--redis-port",
    String(options.redisPort ?? 0),
    "--dns-port",
    String(options.dnsPort ?? 0),
  ];
}

/**
 * `stayup up --detach` of the repository's description from `stateDir`, on free ports chosen by
 * stayup (the listener's free on 127.0.0.1 and on the secondary's 127.0.0.2 alike), as a user
 * would; fails the test with the CLI's output if it fails.
 */
export async function upDetached(
  stateDir: string,
  options: {
    args?: string[];
    timeoutMs?: number;
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    /** The description file (the repository's own by default). */
    config?: string;
    /** The DNS server's port (0 by default: one picked by the stack). */
    dnsPort?: number;
  } = {},
): Promise<CliResult> {
  const args = upArgs(stateDir, { config: options.config, dnsPort: options.dnsPort });
  const res = await runCli([...args, "--detach", ...(options.args ?? [])], {
    cwd: options.cwd,
    timeoutMs: options.timeoutMs ?? 150_000,
    env: options.env,
  });
  if (res.code !== 0) throw new Error(`stayup up failed (${res.code}): ${res.stderr}${res.stdout}`);
  return res;
}

/** A real redis-server on a free loopback port, without persistence. */
export class TestRedis {
  process?: ChildProcess;
  constructor(readonly port: number) {}

  static async start(): Promise<TestRedis> {
    const redis = new TestRedis(await findFreePort());
    await redis.start();
    return redis;
  }

  async start(): Promise<void> {
    this.process = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const probe = new Redis({ port: this.port, lazyConnect: true, retryStrategy: () => null });
      probe.on("error", () => undefined);
      try {
        await probe.connect();
        await probe.ping();
        return;
      } catch {
        await sleep(50);
      } finally {
        probe.disconnect();
      }
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
}

/**
 * Three real Redis nodes (one per AZ, one replica acknowledging each write) under Sentinel, in a
 * fresh state folder with its generated password; `seen` collects every event the controller
 * publishes, in order. Not started: `redis.start()` in `before`.
 */
export function testRedisReplication(): {
  stateDir: string;
  password: string;
  redis: RedisReplicationController;
  seen: TimedStackEvent[];
} {
  const stateDir = tempDir();
  const password = localRedisPassword(stateDir);
  const events = new EventBus();
  const seen: TimedStackEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const redis = new RedisReplicationController({
    host: "127.0.0.1",
    port: 0,
    dataDir: path.join(stateDir, "redis", "test"),
    availabilityZones: ["az-a", "az-b", "az-c"],
    replicasToAcknowledge: 1,
    events,
    password,
  });
  return { stateDir, password, redis, seen };
}

/**
 * One command to the Redis node or Sentinel on loopback `port`, authenticated with `password`, on a
 * connection of its own (closed after): no retry, no reconnection; rejects with the connection's or
 * the command's error.
 */
export async function redisCall(port: number, password: string, ...command: string[]): Promise<unknown> {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => undefined); // the call's own rejection says what failed
  try {
    await client.connect();
    return await client.call(command[0] as string, ...command.slice(1));
  } finally {
    client.disconnect();
  }
}

export const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One process per CPU burning it until killed: a machine busy with other work (the overload tests). */
export function startCpuBurners(count: number): ChildProcess[] {
  return Array.from({ length: count }, () =>
    spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }),
  );
}

export type CpuSpikeReport = DrillReport & {
  events: TimedStackEvent[];
  startDesired: number;
  peakDesired: number;
  loadFailureWindows: unknown;
};

/**
 * The cpu-spike drill's JSON report; its figures (what docs/benchmarks.md records) and its events,
 * timed from the first, go to the test's diagnostics.
 */
export function cpuSpikeReport(stdout: string, t: { diagnostic(message: string): void }): CpuSpikeReport {
  const report = JSON.parse(stdout) as CpuSpikeReport;
  const { timeline: _timeline, events, ...figures } = report as unknown as Record<string, unknown>;
  t.diagnostic(JSON.stringify(figures));
  const during = events as TimedStackEvent[];
  const t0 = Date.parse(during[0]?.time ?? new Date().toISOString());
  for (const e of during) {
    const { time, seq: _seq, type, ...rest } = e as TimedStackEvent & Record<string, unknown>;
    t.diagnostic(`+${((Date.parse(time) - t0) / 1000).toFixed(2)} s ${type} ${JSON.stringify(rest)}`);
  }
  return report;
}

export interface StartedWebService {
  child: ChildProcess;
  url: string;
  codeCache?: CodeCacheOutcome;
}

/**
 * Starts the built web service as an instance runs it (its own Node.js flags, not the test's tsx)
 * and waits for its port; `codeCache` is the outcome the code-cache starter reported, if it ran.
 */
export async function startWebService(
  entry: { modulePath: string; args: string[] },
  redisPort: number,
  /** Changes to the instance's environment; an undefined value removes the variable. */
  envChanges: Record<string, string | undefined> = {},
): Promise<StartedWebService> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STAYUP_INSTANCE_ID: "i-test0001",
    STAYUP_AZ: "eu-west-3a",
    STAYUP_REGION: "eu-west-3",
    STAYUP_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "warn",
  };
  for (const [key, value] of Object.entries(envChanges)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const child = fork(entry.modulePath, entry.args, {
    env,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: [],
  });
  let codeCache: CodeCacheOutcome | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    child.on("message", (m: { type?: string; port?: number; outcome?: CodeCacheOutcome }) => {
      if (m.type === "code-cache") codeCache = m.outcome;
      if (m.type === "listening") resolve(m.port ?? 0);
    });
    child.once("exit", (code) => reject(new Error(`instance exited with ${code}`)));
  });
  child.removeAllListeners("exit");
  return { child, url: `http://127.0.0.1:${port}`, codeCache };
}

/**
 * The status of a stand-in stack (nothing runs): a load-balanced dev stack in eu-west-3 with two
 * instances in service but none listed, no region listed, and `changes` on top.
 */
export function standInStatus(changes: Partial<StackStatus> = {}): StackStatus {
  return {
    name: "stayup",
    environment: "dev",
    topology: "load-balanced",
    region: "eu-west-3",
    listener: "http://127.0.0.1:1",
    pid: process.pid,
    redis: { url: "redis://127.0.0.1:2" },
    group: { min: 2, desired: 2, max: 4, inService: 2 },
    instances: [],
    regions: [],
    ...changes,
  };
}

/**
 * A stand-in control plane, named in `stateDir`'s state file as a running stack's is, so that the
 * CLI given that state folder talks to it: a loopback server answering JSON, `status` on /status,
 * `{}` elsewhere, unless `route` answers the request first (it returns true when it did).
 */
export async function startStandInControlPlane(
  stateDir: string,
  status: StackStatus,
  route: (req: IncomingMessage, res: ServerResponse) => boolean = () => false,
): Promise<Server> {
  const server = createHttpServer((req, res) => {
    res.setHeader("content-type", "application/json");
    if (route(req, res)) return;
    res.end(req.url === "/status" ? JSON.stringify(status) : "{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  writeFileSync(
    path.join(stateDir, stateFileName),
    JSON.stringify({
      pid: process.pid,
      controlUrl: `http://127.0.0.1:${port}`,
      token: "t",
      listener: "http://127.0.0.1:1",
      environment: "dev",
      startedAt: new Date().toISOString(),
    }),
  );
  return server;
}
