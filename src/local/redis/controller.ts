import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { Redis } from "ioredis";
import { StayupError } from "../../shared/errors.ts";
import { assertPortFree, findExecutable, findFreePort, sleep } from "../../shared/net.ts";
import type { EventBus } from "../events/bus.ts";

export interface RedisControllerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  dataDir: string;
  events: EventBus;
}

/**
 * Owns one redis-server process: starts it with persistence on (so the count survives
 * `stayup down` + `stayup up`), and starts it again if it dies while the stack is up.
 */
export class RedisController {
  private process?: ChildProcess;
  private stopping = false;
  private restartTimer?: NodeJS.Timeout;
  port = 0;

  constructor(private readonly options: RedisControllerOptions) {}

  get url(): string {
    return `redis://${this.options.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Checks what can be checked before anything starts: the binary and the port. */
  async preflight(): Promise<void> {
    if (!findExecutable("redis-server")) {
      throw new StayupError(
        "redis-server was not found on PATH",
        "install Redis: `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)",
      );
    }
    await assertPortFree(
      this.options.host,
      this.options.port,
      "Redis",
      "set redis.localPort in stayup.config.ts to a free port (0 picks one), or stop what holds it",
    );
  }

  async start(): Promise<void> {
    await this.preflight();
    this.port = this.options.port || (await findFreePort(this.options.host));
    mkdirSync(this.options.dataDir, { recursive: true });
    await this.spawn();
  }

  private async spawn(): Promise<void> {
    const args = [
      "--bind",
      this.options.host,
      "--port",
      String(this.port),
      "--dir",
      this.options.dataDir,
      // Persistence: an append-only file fsynced every second, like ElastiCache's AOF default.
      "--appendonly",
      "yes",
      "--appendfsync",
      "everysec",
      "--save",
      "",
      "--daemonize",
      "no",
      "--protected-mode",
      "yes",
      "--loglevel",
      "warning",
    ];
    const child = spawn("redis-server", args, { stdio: ["ignore", "ignore", "pipe"] });
    this.process = child;
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    child.once("exit", (code, signal) => {
      this.options.events.publish({ type: "redis.exited", pid: child.pid ?? 0, code, signal });
      if (this.process === child) this.process = undefined;
      if (!this.stopping) {
        // Reconcile: the stack wants a Redis; bring one back on the same port and data.
        this.restartTimer = setTimeout(() => void this.spawn().catch(() => undefined), 500);
      }
    });
    await this.waitUntilReady(child, () => stderr);
    this.options.events.publish({ type: "redis.started", port: this.port, pid: child.pid ?? 0 });
  }

  private async waitUntilReady(child: ChildProcess, stderr: () => string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new StayupError(
          `redis-server exited at start (${child.signalCode ?? `code ${child.exitCode}`}): ${stderr().trim()}`,
          "see the message above; a port clash or an unwritable data directory are the usual causes",
        );
      }
      const probe = new Redis({
        host: this.options.host,
        port: this.port,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on("error", () => undefined); // a refused probe is expected while Redis boots
      try {
        await probe.connect();
        if ((await probe.ping()) === "PONG") return;
      } catch {
        // not up yet
      } finally {
        probe.disconnect();
      }
      await sleep(50);
    }
    throw new StayupError(
      "redis-server did not answer PING within 10 s",
      "check its log and the data directory",
    );
  }

  /** Stops Redis cleanly (SIGTERM: it flushes the append-only file and exits). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
