import type { ChildProcess } from "node:child_process";
import { Redis } from "ioredis";
import { findFreePort } from "../../shared/net.ts";
import { ensurePrivateDir } from "../../shared/private-file.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { ProcessRegistry } from "../processes.ts";
import {
  persistenceArgs,
  redisLogFile,
  redisPreflight,
  startRedisProcess,
  stopProcess,
  writeNodeAuthConfig,
} from "./process.ts";

export interface RedisControllerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  dataDir: string;
  events: EventPublisher;
  /** Required by Redis (and Sentinels) for every command; instances get it in their environment. */
  password: string;
  /** Where every process started is recorded (for a run killed before it could stop them). */
  processes?: ProcessRegistry;
  /** Start as a replica of another region's Redis (a cross-region replica) until `promote()`. */
  follow?: { host: string; port: number };
}

/** A redis:// URL with the password (no user name: Redis's default user), as ordinary clients read it. */
export const redisUrl = (host: string, port: number, password?: string): string =>
  `redis://${password ? `:${encodeURIComponent(password)}@` : ""}${host}:${port}`;

/** How instances reach Redis: what the group passes to every instance's environment. */
export interface RedisEndpoint {
  /** Environment variables for the web service. */
  environment(): Record<string, string>;
  readonly url: string;
}

/**
 * Owns one redis-server process: starts it with persistence on (so the count survives
 * `stayup down` + `stayup up`), and starts it again if it dies while the stack is up.
 */
export class RedisController implements RedisEndpoint {
  private process?: ChildProcess;
  private stopping = false;
  private restartTimer?: NodeJS.Timeout;
  port = 0;
  /** A failed restart is an event and is tried again with back-off; it never ends the runtime. */
  private readonly guard: ControllerGuard;
  /** The other region's Redis this one replicates from (a cross-region replica). */
  following?: { host: string; port: number };
  /** Stopped (SIGSTOP): the region is out of reach, its data kept. */
  frozen = false;

  constructor(private readonly options: RedisControllerOptions) {
    this.guard = new ControllerGuard({ controller: "redis", events: options.events });
    this.following = options.follow;
  }

  get host(): string {
    return this.options.host;
  }

  get headPort(): number {
    return this.port;
  }

  freeze(): void {
    this.frozen = true;
    this.process?.kill("SIGSTOP");
  }

  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    this.process?.kill("SIGCONT");
  }

  private async command(...args: string[]): Promise<void> {
    const client = new Redis({
      host: this.options.host,
      port: this.port,
      password: this.options.password,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    client.on("error", () => undefined);
    try {
      await client.call(args[0] as string, ...args.slice(1));
    } finally {
      client.disconnect();
    }
  }

  async follow(upstream: { host: string; port: number }): Promise<void> {
    this.following = upstream;
    await this.command("REPLICAOF", upstream.host, String(upstream.port));
  }

  async promote(): Promise<void> {
    await this.command("REPLICAOF", "NO", "ONE");
    this.following = undefined;
  }

  get url(): string {
    return `redis://${this.options.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  environment(): Record<string, string> {
    return {
      STAYUP_REDIS_URL: this.url,
      STAYUP_REDIS_PASSWORD: this.options.password,
      // Any service's one Redis URL, password included (one node: its port stays across restarts).
      REDIS_URL: redisUrl(this.options.host, this.port, this.options.password),
    };
  }

  /** Checks what can be checked before anything starts: the binary and the port. */
  async preflight(): Promise<void> {
    await redisPreflight(this.options.host, this.options.port);
  }

  async start(): Promise<void> {
    await this.preflight();
    this.port = this.options.port || (await findFreePort(this.options.host));
    ensurePrivateDir(this.options.dataDir);
    await this.spawn();
  }

  private async spawn(): Promise<void> {
    const authConfig = writeNodeAuthConfig(this.options.dataDir, this.options.password);
    const child = await startRedisProcess(
      this.options.host,
      this.port,
      [
        authConfig,
        "--bind",
        this.options.host,
        "--port",
        String(this.port),
        ...persistenceArgs(this.options.dataDir),
        "--daemonize",
        "no",
        "--loglevel",
        "notice",
        ...(this.following ? ["--replicaof", this.following.host, String(this.following.port)] : []),
      ],
      this.options.password,
      redisLogFile(this.options.dataDir),
    );
    this.process = child;
    const { processes } = this.options;
    const pid = child.pid ?? 0;
    processes?.add({ pid, kind: "redis", name: "redis", port: this.port, dir: this.options.dataDir });
    child.once(
      "exit",
      this.guard.wrap((code: number | null, signal: NodeJS.Signals | null) => {
        processes?.remove(pid);
        this.options.events.publish({ type: "redis.exited", pid: child.pid ?? 0, code, signal });
        if (this.process === child) this.process = undefined;
        if (!this.stopping) {
          // Reconcile: the stack wants a Redis; bring one back on the same port and data.
          this.restartTimer = setTimeout(
            () => this.guard.retryUntilDone(() => this.spawn(), "the restart of redis-server is"),
            500,
          );
        }
      }, "redis-server is started again when it exits next"),
    );
    this.options.events.publish({ type: "redis.started", port: this.port, pid: child.pid ?? 0 });
  }

  async stop(): Promise<void> {
    this.thaw();
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.guard.stop();
    await stopProcess(this.process);
  }
}
