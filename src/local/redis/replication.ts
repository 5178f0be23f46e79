import type { ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import { findFreePort } from "../../shared/net.ts";
import type { EventBus } from "../events/bus.ts";
import type { RedisEndpoint } from "./controller.ts";
import { persistenceArgs, redisPreflight, startRedisProcess, stopProcess } from "./process.ts";

export interface RedisReplicationOptions {
  host: string;
  /** Port of the first node (0 picks a free one); the others always take free ports. */
  port: number;
  dataDir: string;
  /** The two nodes go to the first two AZs (Multi-AZ: primary and replica apart). */
  availabilityZones: string[];
  events: EventBus;
  /** Sentinel's down-after-milliseconds: how long a silent primary takes to be declared down. */
  downAfterMs?: number;
  failoverTimeoutMs?: number;
}

interface RedisNode {
  /** A replica whose link to the primary is up (so it holds every acknowledged write). */
  inSync?: boolean;
  name: string;
  az: string;
  port: number;
  dir: string;
  process?: ChildProcess;
}

export const sentinelMasterName = "stayup";

/**
 * Redis Multi-AZ on one machine: a primary and a replica in different AZs, watched by a quorum of
 * three Sentinels with tuned timeouts (1 s to declare the primary down instead of the default 30 s).
 * A node that dies is started again as a replica of whichever node is primary by then.
 */
export class RedisReplicationController implements RedisEndpoint {
  readonly nodes: RedisNode[] = [];
  private readonly sentinels: { port: number; dir: string; process?: ChildProcess }[] = [];
  private watcher?: Redis;
  private stopping = false;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  /** Port of the node Sentinel last named primary. */
  masterPort = 0;

  constructor(private readonly options: RedisReplicationOptions) {}

  get url(): string {
    return `redis-sentinel://${this.sentinels.map((s) => `${this.options.host}:${s.port}`).join(",")}/${sentinelMasterName}`;
  }

  get pid(): number | undefined {
    return this.nodes.find((n) => n.port === this.masterPort)?.process?.pid;
  }

  environment(): Record<string, string> {
    return {
      STAYUP_REDIS_SENTINELS: this.sentinels.map((s) => `${this.options.host}:${s.port}`).join(","),
      STAYUP_REDIS_MASTER_NAME: sentinelMasterName,
      // Answer a write only once the replica has it, so a failover never loses a count a client saw.
      STAYUP_REDIS_WAIT_REPLICAS: "1",
    };
  }

  async preflight(): Promise<void> {
    await redisPreflight(this.options.host, this.options.port);
  }

  async start(): Promise<void> {
    await this.preflight();
    const { host } = this.options;
    const azs = this.options.availabilityZones;
    for (const [i, name] of ["redis-a", "redis-b"].entries()) {
      const port = i === 0 && this.options.port ? this.options.port : await findFreePort(host);
      const dir = path.join(this.options.dataDir, name);
      mkdirSync(dir, { recursive: true });
      this.nodes.push({ name, az: azs[i % azs.length] as string, port, dir });
    }
    const [primary, replica] = this.nodes as [RedisNode, RedisNode];
    this.masterPort = primary.port;
    await this.startNode(primary);
    await this.startNode(replica, primary.port);
    for (let i = 0; i < 3; i++) {
      const dir = path.join(this.options.dataDir, `sentinel-${i + 1}`);
      // Sentinel rewrites its file with what it learns; each `up` starts from the description.
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const sentinel = {
        port: await findFreePort(host),
        dir,
        process: undefined as ChildProcess | undefined,
      };
      const conf = path.join(dir, "sentinel.conf");
      writeFileSync(
        conf,
        [
          `port ${sentinel.port}`,
          `bind ${host}`,
          `dir ${dir}`,
          `sentinel monitor ${sentinelMasterName} ${host} ${primary.port} 2`,
          `sentinel down-after-milliseconds ${sentinelMasterName} ${this.options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${sentinelMasterName} ${this.options.failoverTimeoutMs ?? 5000}`,
          `sentinel parallel-syncs ${sentinelMasterName} 1`,
          "",
        ].join("\n"),
      );
      sentinel.process = await startRedisProcess(host, sentinel.port, [
        conf,
        "--sentinel",
        "--loglevel",
        "warning",
      ]);
      this.sentinels.push(sentinel);
    }
    this.watchFailovers();
  }

  private async startNode(node: RedisNode, replicaOfPort?: number): Promise<void> {
    const { host } = this.options;
    const args = [
      "--bind",
      host,
      "--port",
      String(node.port),
      ...persistenceArgs(node.dir),
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
      // Redis 7 waits 5 s before a diskless sync to batch replicas; with one replica that is 5 s
      // without redundancy after every failover.
      "--repl-diskless-sync-delay",
      "0",
      ...(replicaOfPort ? ["--replicaof", host, String(replicaOfPort)] : []),
    ];
    const child = await startRedisProcess(host, node.port, args);
    node.process = child;
    this.options.events.publish({
      type: "redis.started",
      port: node.port,
      pid: child.pid ?? 0,
      role: replicaOfPort ? "replica" : "primary",
      az: node.az,
    });
    node.inSync = false;
    if (replicaOfPort) void this.announceWhenInSync(node, child);
    child.once("exit", (code, signal) => {
      node.inSync = false;
      this.options.events.publish({ type: "redis.exited", pid: child.pid ?? 0, code, signal, az: node.az });
      if (node.process === child) node.process = undefined;
      if (this.stopping) return;
      // Reconcile: bring the node back as a replica of the current primary, never as a stale primary.
      // A dead primary waits for the Sentinels to promote the replica first (or for their give-up).
      const wasPrimary = node.port === this.masterPort;
      const deadline =
        Date.now() + (this.options.downAfterMs ?? 1000) + (this.options.failoverTimeoutMs ?? 5000);
      const attempt = () => {
        const timer = setTimeout(() => {
          this.restartTimers.delete(timer);
          if (this.stopping) return;
          if (wasPrimary && this.masterPort === node.port && Date.now() < deadline) return attempt();
          void this.currentMasterPort()
            .then((master) => this.startNode(node, master && master !== node.port ? master : undefined))
            .catch(() => attempt());
        }, 250);
        this.restartTimers.add(timer);
      };
      attempt();
    });
  }

  /** Publishes `redis.replica-in-sync` once the replica's link to its primary is up. */
  private async announceWhenInSync(node: RedisNode, child: ChildProcess): Promise<void> {
    const client = new Redis({ host: this.options.host, port: node.port, retryStrategy: () => 100 });
    client.on("error", () => undefined);
    try {
      while (!this.stopping && node.process === child) {
        const info = await client.info("replication").catch(() => "");
        if (/master_link_status:up/.test(info)) {
          node.inSync = true;
          this.options.events.publish({ type: "redis.replica-in-sync", port: node.port, az: node.az });
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      client.disconnect();
    }
  }

  /** The primary according to the Sentinels (what clients will be told). */
  async currentMasterPort(): Promise<number | undefined> {
    for (const s of this.sentinels) {
      const client = new Redis({
        host: this.options.host,
        port: s.port,
        lazyConnect: true,
        retryStrategy: () => null,
      });
      client.on("error", () => undefined);
      try {
        await client.connect();
        const addr = (await client.call("SENTINEL", "get-master-addr-by-name", sentinelMasterName)) as
          string[] | null;
        if (addr?.[1]) return Number(addr[1]);
      } catch {
        // try the next sentinel
      } finally {
        client.disconnect();
      }
    }
    return undefined;
  }

  private watchFailovers(): void {
    const first = this.sentinels[0];
    if (!first) return;
    this.watcher = new Redis({ host: this.options.host, port: first.port, retryStrategy: () => 200 });
    this.watcher.on("error", () => undefined);
    void this.watcher.subscribe("+switch-master");
    this.watcher.on("message", (_channel: string, message: string) => {
      // "<name> <old-ip> <old-port> <new-ip> <new-port>"
      const [, , oldPort, , newPort] = message.split(" ");
      const from = this.nodes.find((n) => n.port === Number(oldPort));
      const to = this.nodes.find((n) => n.port === Number(newPort));
      this.masterPort = Number(newPort);
      // The former replica is primary now; the other node must resync before it counts again.
      for (const n of this.nodes) if (n.port !== this.masterPort) n.inSync = false;
      this.options.events.publish({
        type: "redis.failover",
        fromPort: Number(oldPort),
        toPort: Number(newPort),
        fromAz: from?.az ?? "unknown",
        toAz: to?.az ?? "unknown",
      });
    });
  }

  nodeStatus(): { name: string; az: string; port: number; pid?: number; role: string; inSync?: boolean }[] {
    return this.nodes.map((n) => ({
      name: n.name,
      az: n.az,
      port: n.port,
      pid: n.process?.pid,
      inSync: n.port === this.masterPort ? undefined : Boolean(n.inSync),
      role: !n.process ? "down" : n.port === this.masterPort ? "primary" : "replica",
    }));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.watcher?.disconnect();
    // Sentinels first: a primary stopping on purpose must not trigger a failover.
    await Promise.all(this.sentinels.map((s) => stopProcess(s.process)));
    await Promise.all(this.nodes.map((n) => stopProcess(n.process)));
  }
}
