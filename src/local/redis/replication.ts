import type { ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import { findFreePort } from "../../shared/net.ts";
import { SENTINEL_QUORUM, SENTINELS_PER_REGION } from "../../stack/derived.ts";
import { LOCAL_SENTINEL_TIMING } from "../../stack/region-failover-timing.ts";
import { ensurePrivateDir, writePrivateFileAtomic } from "../../shared/private-file.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { ProcessRegistry } from "../processes.ts";
import type { RedisEndpoint } from "./controller.ts";
import { PrimaryEndpoint } from "./primary-endpoint.ts";
import {
  lastLogLines,
  persistenceArgs,
  redisLogFile,
  redisPreflight,
  startRedisProcess,
  stopProcess,
  writeNodeAuthConfig,
} from "./process.ts";

export interface RedisReplicationOptions {
  host: string;
  /** Port of the first node (0 picks a free one); the others always take free ports. */
  port: number;
  dataDir: string;
  /** One node per AZ (Multi-AZ: the primary and a replica in each other AZ). */
  availabilityZones: string[];
  /** Replicas that must hold a write: WAIT on the instances, min-replicas-to-write on the primary. */
  replicasToAcknowledge: number;
  /** How long an instance holds a count through a failover before answering 503 (redisWriteHoldMs). */
  writeHoldMs?: number;
  events: EventPublisher;
  /** Required by every node and Sentinel; instances get it in their environment. */
  password: string;
  /** Where every process started is recorded (for a run killed before it could stop them). */
  processes?: ProcessRegistry;
  /** Sentinel's down-after-milliseconds: how long a silent primary takes to be declared down. */
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  /**
   * Start as a follower of another region's group (a cross-region replica): the group's primary
   * replicates from `follow`, and the Sentinels watch nothing until `promote()` (a Sentinel seeing
   * its primary report itself a replica would declare it down and promote one of its replicas).
   */
  follow?: { host: string; port: number };
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
 * The Sentinel events that are decisions about the primary (see the Sentinel docs' event list):
 * down or back, a failover tried, a leader elected, a replica chosen or none fit, an abort, TILT.
 */
const sentinelDecisions =
  /^[+-](sdown|odown|try-failover|elected-leader|failover-state-select-slave|selected-slave|no-good-slave|failover-abort-.*|failover-end-for-timeout|failover-end|tilt|new-epoch|vote-for-leader)$/;

/** A Redis reply of alternating names and values as an object. */
const pairs = (flat: string[]): Record<string, string> => {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
};

/**
 * What the controller remembers across runs (`replication.json` in the data folder): which node was
 * primary, and the nodes' replication offsets when they were last seen together (at `stayup down`,
 * or when leftovers of a killed run are stopped).
 */
export interface ReplicationRecord {
  primary?: string;
  offsets?: Record<string, number>;
  updatedAt?: string;
}

export const replicationRecordFile = "replication.json";

/**
 * Which node starts as primary, so that `stayup up` never resyncs the newest copy away: the node
 * with the highest recorded replication offset (ties: the remembered primary), else the remembered
 * primary, else the first node (a fresh stack).
 */
export function chooseStartPrimary(
  nodes: readonly string[],
  record: ReplicationRecord,
): { node: string; reason: string } {
  const offsets = Object.entries(record.offsets ?? {}).filter(([n]) => nodes.includes(n));
  if (offsets.length > 0) {
    const highest = Math.max(...offsets.map(([, o]) => o));
    const newest = offsets.filter(([, o]) => o === highest).map(([n]) => n);
    const node = newest.includes(record.primary ?? "") ? (record.primary as string) : (newest[0] as string);
    return { node, reason: `highest replication offset (${highest}) when last seen` };
  }
  if (record.primary && nodes.includes(record.primary)) {
    return { node: record.primary, reason: "it was primary when the stack last ran" };
  }
  return { node: nodes[0] as string, reason: "first start" };
}

/**
 * Redis Multi-AZ on one machine: one node per AZ (a primary and its replicas), watched by the
 * region's Sentinel (SENTINELS_PER_REGION: one, placed in no zone, as ElastiCache's failover is
 * decided by AWS's regional control plane) with tuned timeouts (LOCAL_SENTINEL_TIMING: 2 s to
 * declare the primary down instead of the default 30 s); the Sentinel is restarted from its
 * rewritten config if it exits. Each node and the Sentinel log to `redis.log` in their own folder.
 * The primary refuses writes no replica takes (`min-replicas-to-write`), so an isolated old
 * primary cannot accept counts a failover would discard; Sentinel promotes the replica with the
 * highest replication offset (equal priorities). A node that dies is started again as a replica of
 * whichever node is primary by then. Which node was primary is remembered across runs.
 */
export class RedisReplicationController implements RedisEndpoint {
  readonly nodes: RedisNode[] = [];
  private readonly sentinels: { name: string; port: number; dir: string; process?: ChildProcess }[] = [];
  /** One `+switch-master` subscriber per Sentinel: one down or starved must not hide a failover. */
  private readonly failoverWatchers: Redis[] = [];
  private readonly sentinelSubscribers: Redis[] = [];
  private stopping = false;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  /** Port of the node Sentinel last named primary. */
  masterPort = 0;
  /** REDIS_URL's address: forwards to whichever node Sentinel names primary (primary-endpoint.ts). */
  endpoint?: PrimaryEndpoint;
  /** A failed restart or handler is an event, then a retry; it never ends the runtime. */
  private readonly guard: ControllerGuard;
  /** The other region's primary this group's primary replicates from (a cross-region replica). */
  following?: { host: string; port: number };
  /** Every process stopped (SIGSTOP): the region is unreachable, its data intact. */
  frozen = false;

  constructor(private readonly options: RedisReplicationOptions) {
    this.guard = new ControllerGuard({ controller: "redis", events: options.events });
    this.following = options.follow;
  }

  get host(): string {
    return this.options.host;
  }

  /** The node taking the group's writes (or, following another region, receiving its stream). */
  get headPort(): number {
    return this.masterPort;
  }

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
      STAYUP_REDIS_PASSWORD: this.options.password,
      // Answer a write only once the replica has it, so a failover never loses a count a client saw.
      STAYUP_REDIS_WAIT_REPLICAS: String(this.options.replicasToAcknowledge),
      // Held through a failover within the Sentinels' budget: clients wait for it, not get a 503.
      ...(this.options.writeHoldMs !== undefined
        ? { STAYUP_REDIS_WRITE_HOLD_MS: String(this.options.writeHoldMs) }
        : {}),
      // Any service's one Redis URL: the primary endpoint, whichever node is primary.
      ...(this.endpoint ? { REDIS_URL: this.endpoint.url } : {}),
    };
  }

  async preflight(): Promise<void> {
    await redisPreflight(this.options.host, this.options.port);
  }

  private get recordPath(): string {
    return path.join(this.options.dataDir, replicationRecordFile);
  }

  readRecord(): ReplicationRecord {
    try {
      return JSON.parse(readFileSync(this.recordPath, "utf8")) as ReplicationRecord;
    } catch {
      return {};
    }
  }

  private writeRecord(record: ReplicationRecord): void {
    ensurePrivateDir(this.options.dataDir);
    writePrivateFileAtomic(
      this.recordPath,
      `${JSON.stringify({ ...record, updatedAt: new Date().toISOString() }, null, 2)}\n`,
    );
  }

  async start(): Promise<void> {
    await this.preflight();
    const { host } = this.options;
    const azs = this.options.availabilityZones;
    const count = Math.max(2, azs.length);
    for (let i = 0; i < count; i++) {
      const name = `redis-${String.fromCharCode(97 + i)}`;
      const port = i === 0 && this.options.port ? this.options.port : await findFreePort(host);
      const dir = path.join(this.options.dataDir, name);
      ensurePrivateDir(dir);
      this.nodes.push({ name, az: azs[i % azs.length] as string, port, dir });
    }
    const choice = chooseStartPrimary(
      this.nodes.map((n) => n.name),
      this.readRecord(),
    );
    const primary = this.nodes.find((n) => n.name === choice.node) as RedisNode;
    this.options.events.publish({
      type: "redis.primary-chosen",
      node: primary.name,
      az: primary.az,
      reason: choice.reason,
    });
    this.masterPort = primary.port;
    await this.startNode(primary, undefined, this.following);
    this.writeRecord({ primary: primary.name });
    for (const replica of this.nodes) if (replica !== primary) await this.startNode(replica, primary.port);
    for (let i = 0; i < SENTINELS_PER_REGION; i++) {
      const name = `sentinel-${i + 1}`;
      const dir = path.join(this.options.dataDir, name);
      // Sentinel rewrites its file with what it learns; each `up` starts from the description.
      rmSync(dir, { recursive: true, force: true });
      ensurePrivateDir(dir);
      const sentinel = { name, port: await findFreePort(host), dir, process: undefined };
      writePrivateFileAtomic(
        path.join(dir, "sentinel.conf"),
        [
          `port ${sentinel.port}`,
          `requirepass ${this.options.password}`,
          `bind ${host}`,
          `dir ${dir}`,
          // A follower's Sentinels watch nothing until the group is promoted (see `follow`).
          ...(this.following ? [] : this.monitorLines(primary.port)),
          "",
        ].join("\n"),
      );
      this.sentinels.push(sentinel);
      await this.startSentinel(sentinel);
    }
    this.watchFailovers();
    this.endpoint = new PrimaryEndpoint({
      host,
      sentinels: this.sentinels.map((s) => ({ host, port: s.port })),
      masterName: sentinelMasterName,
      password: this.options.password,
    });
    await this.endpoint.start({ host, port: primary.port });
    this.watchSentinelDecisions();
  }

  /**
   * Starts a Sentinel from its sentinel.conf (the one written at `start`, or its own rewrite of it:
   * the primary it names, the replicas it knows, its epoch) and starts it again whenever it exits
   * while the stack runs: the region's failover decision-maker is supervised, like AWS's control
   * plane, never left down.
   */
  private async startSentinel(sentinel: {
    name: string;
    port: number;
    dir: string;
    process?: ChildProcess;
  }): Promise<void> {
    const { host } = this.options;
    const child = await startRedisProcess(
      host,
      sentinel.port,
      // Notice: its decisions (+sdown, +odown, +selected-slave...) and what it learns (+slave, +reboot).
      [path.join(sentinel.dir, "sentinel.conf"), "--sentinel", "--loglevel", "notice"],
      this.options.password,
      redisLogFile(sentinel.dir),
    );
    if (this.stopping) {
      await stopProcess(child);
      return;
    }
    sentinel.process = child;
    // Restarted while its region is out of reach: it is frozen with the rest (thawed with it).
    if (this.frozen) child.kill("SIGSTOP");
    this.track(child, "sentinel", sentinel.name, sentinel.port);
    child.once(
      "exit",
      this.guard.wrap((code: number | null, signal: NodeJS.Signals | null) => {
        if (sentinel.process === child) sentinel.process = undefined;
        if (this.stopping) return;
        this.options.events.publish({
          type: "redis.sentinel",
          sentinel: sentinel.name,
          event: "exited",
          detail: `pid ${child.pid ?? 0} (${signal ?? `code ${code}`}): started again from its sentinel.conf`,
        });
        const attempt = () => {
          const timer = setTimeout(() => {
            this.restartTimers.delete(timer);
            if (this.stopping) return;
            void this.startSentinel(sentinel)
              .then(() => {
                if (!sentinel.process || this.stopping) return;
                this.options.events.publish({
                  type: "redis.sentinel",
                  sentinel: sentinel.name,
                  event: "restarted",
                  detail: `port ${sentinel.port}, pid ${sentinel.process.pid ?? 0}`,
                });
              })
              .catch((error: unknown) => {
                this.guard.report(error, `${sentinel.name} is started again in 0.25 s`);
                attempt();
              });
          }, 250);
          this.restartTimers.add(timer);
        };
        attempt();
      }, `${sentinel.name} is started again when it exits next`),
    );
  }

  private monitorLines(port: number): string[] {
    return [
      `sentinel monitor ${sentinelMasterName} ${this.options.host} ${port} ${SENTINEL_QUORUM}`,
      `sentinel auth-pass ${sentinelMasterName} ${this.options.password}`,
      `sentinel down-after-milliseconds ${sentinelMasterName} ${this.options.downAfterMs ?? LOCAL_SENTINEL_TIMING.downAfterMs}`,
      `sentinel failover-timeout ${sentinelMasterName} ${this.options.failoverTimeoutMs ?? LOCAL_SENTINEL_TIMING.failoverTimeoutMs}`,
      `sentinel parallel-syncs ${sentinelMasterName} 1`,
    ];
  }

  private async startNode(
    node: RedisNode,
    replicaOfPort?: number,
    upstream?: { host: string; port: number },
  ): Promise<void> {
    const { host } = this.options;
    const args = [
      writeNodeAuthConfig(node.dir, this.options.password),
      "--bind",
      host,
      "--port",
      String(node.port),
      ...persistenceArgs(node.dir),
      "--daemonize",
      "no",
      // Notice: syncs served and received, "AOF fsync is taking too long": why a node looked down.
      "--loglevel",
      "notice",
      // Redis 7 waits 5 s before a diskless sync to batch replicas: 5 s without redundancy.
      "--repl-diskless-sync-delay",
      "0",
      // LATENCY LATEST names any stall of 100 ms or more (fork, AOF fsync...) when a node looks down.
      "--latency-monitor-threshold",
      "100",
      // A primary without a replica that acknowledged within 3 s refuses writes (NOREPLICAS).
      "--min-replicas-to-write",
      String(this.options.replicasToAcknowledge),
      "--min-replicas-max-lag",
      "3",
      ...(replicaOfPort ? ["--replicaof", host, String(replicaOfPort)] : []),
      ...(upstream && !replicaOfPort ? ["--replicaof", upstream.host, String(upstream.port)] : []),
    ];
    const child = await startRedisProcess(
      host,
      node.port,
      args,
      this.options.password,
      redisLogFile(node.dir),
    );
    // `stop()` ran while this node was starting: it could not see the process, so stop it here.
    if (this.stopping) {
      await stopProcess(child);
      return;
    }
    node.process = child;
    // Restarted while its region or zone is out of reach: stopped with the rest (continued with it).
    if (this.frozen || this.impairedZones.has(node.az)) child.kill("SIGSTOP");
    this.track(child, "redis-node", node.name, node.port, node.dir);
    this.options.events.publish({
      type: "redis.started",
      port: node.port,
      pid: child.pid ?? 0,
      role: replicaOfPort || upstream ? "replica" : "primary",
      az: node.az,
    });
    node.inSync = false;
    // The head of a group that follows another region's primary is in sync once linked to it.
    if (upstream) {
      void this.announceWhenInSync(node, child, upstream.port).catch((error: unknown) =>
        this.guard.report(error, `redis.replica-in-sync of ${node.az} is announced when it restarts next`),
      );
    } else if (replicaOfPort) this.watchSync(node);
    child.once(
      "exit",
      this.guard.wrap((code: number | null, signal: NodeJS.Signals | null) => {
        node.inSync = false;
        this.options.events.publish({ type: "redis.exited", pid: child.pid ?? 0, code, signal, az: node.az });
        if (node.process === child) node.process = undefined;
        if (this.stopping) return;
        // Reconcile: bring the node back as a replica of the current primary, never as a stale primary.
        // A dead primary waits for the Sentinels to promote the replica first (or for their give-up).
        const wasPrimary = node.port === this.masterPort;
        const diedAt = Date.now();
        const deadline =
          diedAt +
          (this.options.downAfterMs ?? LOCAL_SENTINEL_TIMING.downAfterMs) +
          (this.options.failoverTimeoutMs ?? LOCAL_SENTINEL_TIMING.failoverTimeoutMs);
        let viewed = false;
        const attempt = () => {
          const timer = setTimeout(() => {
            this.restartTimers.delete(timer);
            if (this.stopping) return;
            if (wasPrimary && this.masterPort === node.port && Date.now() < deadline) return attempt();
            // Not replaced in time: say what Sentinel saw before the old primary comes back.
            if (wasPrimary && !this.following && this.masterPort === node.port && !viewed) {
              viewed = true;
              void this.publishSentinelView(
                `the primary in ${node.az} was not replaced within ${(deadline - diedAt) / 1000} s: restarting it`,
              );
            }
            // Following another region, nothing is asked of the Sentinels (they watch nothing).
            const following = this.following;
            void (following ? Promise.resolve(this.masterPort) : this.currentMasterPort())
              .then((master) => {
                // Stopped while the Sentinels were asked: nothing more is started.
                if (this.stopping) return;
                return master && master !== node.port
                  ? this.startNode(node, master)
                  : this.startNode(node, undefined, following);
              })
              .catch((error: unknown) => {
                this.guard.report(error, `the restart of the node in ${node.az} is retried in 0.25 s`);
                attempt();
              });
          }, 250);
          this.restartTimers.add(timer);
        };
        attempt();
      }, `the node in ${node.az} is started again when it exits next`),
    );
  }

  private track(
    child: ChildProcess,
    kind: "redis-node" | "sentinel",
    name: string,
    port: number,
    dir?: string,
  ): void {
    const { processes } = this.options;
    if (!processes || !child.pid) return;
    const pid = child.pid;
    processes.add({ pid, kind, name, port, dir });
    child.once("exit", () => processes.remove(pid));
  }

  /** The node processes whose link to the primary is being watched (one watch per process). */
  private readonly syncWatched = new Set<ChildProcess>();

  /**
   * Watches a replica until it is in sync again, then publishes `redis.replica-in-sync`. Started
   * for a node started as a replica and, after a failover, for every live replica: Sentinel points
   * the replicas that stayed up at the new primary without restarting them, so a watch begun only
   * at a node's start left them out of sync in status forever (issue 25, item 3).
   */
  private watchSync(node: RedisNode): void {
    const child = node.process;
    if (!child || this.syncWatched.has(child)) return;
    this.syncWatched.add(child);
    void this.announceWhenInSync(node, child)
      .catch((error: unknown) =>
        this.guard.report(error, `redis.replica-in-sync of ${node.az} is announced when it restarts next`),
      )
      .finally(() => this.syncWatched.delete(child));
  }

  /**
   * Publishes `redis.replica-in-sync` once the replica's link is up to the node Sentinel names
   * primary (a link to a former primary, or one seen before the failover message, does not count).
   */
  private async announceWhenInSync(
    node: RedisNode,
    child: ChildProcess,
    /** The port its link must be up to: another region's primary for a following group's head. */
    upstreamPort?: number,
  ): Promise<void> {
    const client = new Redis({
      host: this.options.host,
      port: node.port,
      password: this.options.password,
      retryStrategy: () => 100,
    });
    client.on("error", () => undefined);
    try {
      while (!this.stopping && node.process === child) {
        const info = await client.info("replication").catch(() => "");
        const linkedTo = Number(/master_port:(\d+)/.exec(info)?.[1]);
        if (/master_link_status:up/.test(info) && linkedTo === (upstreamPort ?? this.masterPort)) {
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
    return this.askSentinels(async (client) => {
      const addr = (await client.call("SENTINEL", "get-master-addr-by-name", sentinelMasterName)) as
        string[] | null;
      return addr?.[1] ? Number(addr[1]) : undefined;
    });
  }

  /**
   * The first Sentinel's answer to `ask` (one that is down, answers nothing, or does not answer
   * within 1 s, a stopped or starved one, passes to the next).
   */
  private async askSentinels<T>(ask: (client: Redis) => Promise<T | undefined>): Promise<T | undefined> {
    for (const s of this.sentinels) {
      const client = new Redis({
        host: this.options.host,
        port: s.port,
        password: this.options.password,
        lazyConnect: true,
        retryStrategy: () => null,
      });
      client.on("error", () => undefined);
      let timer: NodeJS.Timeout | undefined;
      try {
        const answer = await Promise.race([
          client.connect().then(() => ask(client)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("no answer within 1 s")), 1000);
          }),
        ]);
        if (answer !== undefined) return answer;
      } catch {
        // ask the next Sentinel
      } finally {
        clearTimeout(timer);
        client.disconnect();
      }
    }
    return undefined;
  }

  /**
   * Listens for `+switch-master` on every Sentinel (with several, listening on the first only
   * missed the switch whenever that one was down or starved). A restarted Sentinel is subscribed
   * to again: the subscriber reconnects to its port.
   */
  private watchFailovers(): void {
    for (const s of this.sentinels) {
      const watcher = new Redis({
        host: this.options.host,
        port: s.port,
        password: this.options.password,
        retryStrategy: () => 200,
      });
      watcher.on("error", () => undefined);
      this.failoverWatchers.push(watcher);
      void watcher
        .subscribe("+switch-master")
        .catch((error: unknown) =>
          this.guard.report(error, "failovers are seen through the other Sentinels and the next status read"),
        );
      watcher.on(
        "message",
        this.guard.wrap((_channel: string, message: string) => {
          void this.onSwitchMaster(message).catch((error: unknown) =>
            this.guard.report(error, "the next failover message is handled as usual"),
          );
        }, "the next failover message is handled as usual"),
      );
    }
  }

  /**
   * One `+switch-master` ("<name> <old-ip> <old-port> <new-ip> <new-port>"). Every Sentinel
   * publishes each switch (the leader first, the others as they learn it): the first to arrive is
   * applied, its copies are not, and one from a primary that is no longer current (a late Sentinel's
   * word on an earlier switch, or a switch in between missed) is applied only if the Sentinels name
   * its new primary now, so a late message never takes the group back to an earlier primary.
   */
  private async onSwitchMaster(message: string): Promise<void> {
    const [name, , oldPortText, , newPortText] = message.split(" ");
    if (name !== sentinelMasterName) return;
    const oldPort = Number(oldPortText);
    const newPort = Number(newPortText);
    if (newPort === this.masterPort) return;
    if (oldPort !== this.masterPort && (await this.currentMasterPort()) !== newPort) return;
    if (newPort === this.masterPort || this.stopping) return;
    const from = this.nodes.find((n) => n.port === oldPort);
    const to = this.nodes.find((n) => n.port === newPort);
    this.masterPort = newPort;
    if (to) this.writeRecord({ primary: to.name });
    // The former replica is primary now; the other node must resync before it counts again.
    for (const n of this.nodes) {
      if (n.port === this.masterPort) continue;
      n.inSync = false;
      this.watchSync(n);
    }
    this.options.events.publish({
      type: "redis.failover",
      fromPort: oldPort,
      toPort: newPort,
      fromAz: from?.az ?? "unknown",
      toAz: to?.az ?? "unknown",
    });
  }

  /**
   * Every Sentinel's decisions about the primary, as events: when no replica is promoted, they say
   * why (never agreed it was down, no leader elected, no replica fit to promote, TILT under load).
   * Hello and discovery messages are left out.
   */
  private watchSentinelDecisions(): void {
    this.sentinels.forEach((s) => {
      const subscriber = new Redis({
        host: this.options.host,
        port: s.port,
        password: this.options.password,
        retryStrategy: () => 200,
      });
      subscriber.on("error", () => undefined);
      this.sentinelSubscribers.push(subscriber);
      void subscriber
        .psubscribe("*")
        .catch((error: unknown) =>
          this.guard.report(error, "Sentinel's decisions are not reported this run"),
        );
      subscriber.on(
        "pmessage",
        this.guard.wrap((_pattern: string, channel: string, message: string) => {
          if (!sentinelDecisions.test(channel)) return;
          this.options.events.publish({
            type: "redis.sentinel",
            sentinel: s.name,
            event: channel,
            detail: message,
          });
          const port = channel === "+sdown" ? /^master \S+ \S+ (\d+)$/.exec(message)?.[1] : undefined;
          if (port) {
            void this.publishSeenDown(s, Number(port)).catch((error: unknown) =>
              this.guard.report(error, "the next +sdown of a live primary is explained as usual"),
            );
          }
        }, "the next Sentinel message is reported as usual"),
      );
    });
  }

  /**
   * A Sentinel called a node down that is running (not killed): what it saw of its link (SENTINEL
   * MASTER, asked at once) and, a second later (Redis logs a stall when it ends), the node's log
   * and latency spikes. A killed primary is not explained: its death is; nor one stopped with its
   * zone or region (az-outage, region-outage): the fault is the explanation, and a stopped node's
   * empty latency report would say it ran and did not stall.
   */
  private async publishSeenDown(sentinel: { name: string; port: number }, port: number): Promise<void> {
    const node = this.nodes.find((n) => n.port === port);
    const outOfReach = () => node !== undefined && (this.frozen || this.impairedZones.has(node.az));
    if (!node?.process || this.stopping || outOfReach()) return;
    const child = node.process;
    const asked = this.client(sentinel.port);
    let sentinelSaw: Record<string, string> = {};
    try {
      sentinelSaw = pairs(
        (await answerWithin(asked.call("SENTINEL", "MASTER", sentinelMasterName), 1000, [])) as string[],
      );
    } catch {
      // a Sentinel that does not answer says nothing more
    } finally {
      asked.disconnect();
    }
    await new Promise((r) => setTimeout(r, 1000));
    if (this.stopping || node.process !== child || outOfReach()) return;
    const latency: string[] = [];
    const probe = this.client(port);
    try {
      const latest = (await answerWithin(probe.call("LATENCY", "LATEST"), 1000, [])) as [
        string,
        number,
        number,
        number,
      ][];
      for (const [event, at, lastMs, maxMs] of latest) {
        latency.push(`${event} ${lastMs} ms at ${new Date(at * 1000).toISOString()} (max ${maxMs} ms)`);
      }
    } catch {
      // a node that does not answer: its log says more
    } finally {
      probe.disconnect();
    }
    this.options.events.publish({
      type: "redis.primary-seen-down",
      sentinel: sentinel.name,
      port,
      az: node.az,
      sentinelSaw,
      nodeLog: lastLogLines(path.join(node.dir, "redis.log"), 15),
      latency,
    });
  }

  /** Sentinel's view of the primary and replicas (SENTINEL MASTER / REPLICAS), as an event. */
  private async publishSentinelView(reason: string): Promise<void> {
    const view = await this.askSentinels(async (client) => ({
      master: pairs((await client.call("SENTINEL", "MASTER", sentinelMasterName)) as string[]),
      replicas: ((await client.call("SENTINEL", "REPLICAS", sentinelMasterName)) as string[][]).map(pairs),
    }));
    if (view) this.options.events.publish({ type: "redis.sentinel-view", reason, ...view });
  }

  /** The Sentinels, in the order they were started. */
  sentinelStatus(): { name: string; port: number; pid?: number }[] {
    return this.sentinels.map((s) => ({ name: s.name, port: s.port, pid: s.process?.pid }));
  }

  nodeStatus(): { name: string; az: string; port: number; pid?: number; role: string; inSync?: boolean }[] {
    return this.nodes.map((n) => ({
      name: n.name,
      az: n.az,
      port: n.port,
      pid: n.process?.pid,
      inSync: n.port === this.masterPort ? undefined : Boolean(n.inSync),
      role: !n.process
        ? "down"
        : n.port !== this.masterPort
          ? "replica"
          : this.following
            ? "cross-region replica"
            : "primary",
    }));
  }

  /** Each live node's replication offset (what it has processed of the primary's stream). */
  async sampleOffsets(): Promise<Record<string, number>> {
    const offsets: Record<string, number> = {};
    await Promise.all(
      this.nodes
        .filter((n) => n.process)
        .map(async (n) => {
          const offset = await replicationOffset(this.options.host, n.port, this.options.password);
          if (offset !== undefined) offsets[n.name] = offset;
        }),
    );
    return offsets;
  }

  /** Every node and Sentinel stopped (SIGSTOP): a region out of reach, its data kept. */
  freeze(): void {
    this.frozen = true;
    for (const child of this.children()) child.kill("SIGSTOP");
  }

  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    for (const child of this.children()) {
      if (!this.nodes.some((n) => n.process === child && this.impairedZones.has(n.az))) child.kill("SIGCONT");
    }
  }

  /** Zones out of reach: their nodes stopped (SIGSTOP), their data kept. */
  private readonly impairedZones = new Set<string>();

  /**
   * An availability zone out of reach takes its node with it, as an AZ outage takes ElastiCache's
   * node there (a primary in it is failed over). The Sentinels stay: they stand for ElastiCache's
   * control plane, which no single zone holds. Returns the nodes stopped.
   */
  impairZone(az: string): { name: string; port: number; role: "primary" | "replica" }[] {
    // Stopping: a node stopped now could not act on stop()'s SIGTERM (killed 5 s later, unflushed).
    if (this.stopping) return [];
    this.impairedZones.add(az);
    const stopped = this.nodes
      .filter((n) => n.az === az)
      .map((n) => {
        if (n.process && n.process.exitCode === null) n.process.kill("SIGSTOP");
        const role = n.port === this.masterPort ? ("primary" as const) : ("replica" as const);
        this.options.events.publish({ type: "redis.zone-impaired", az, node: n.name, port: n.port, role });
        return { name: n.name, port: n.port, role };
      });
    return stopped;
  }

  /** The zone's nodes continue (unless their whole region is still out of reach). */
  restoreZone(az: string): void {
    if (!this.impairedZones.delete(az)) return;
    for (const node of this.nodes) {
      if (node.az !== az || !node.process || node.process.exitCode !== null) continue;
      // A region still out of reach keeps it stopped: it continues, unannounced, with the region.
      if (this.frozen) continue;
      node.process.kill("SIGCONT");
      this.options.events.publish({ type: "redis.zone-restored", az, node: node.name, port: node.port });
    }
  }

  private children(): ChildProcess[] {
    return [...this.nodes.map((n) => n.process), ...this.sentinels.map((s) => s.process)].filter(
      (c): c is ChildProcess => c !== undefined && c.exitCode === null && c.signalCode === null,
    );
  }

  /** Sends one command to each Sentinel (a Sentinel that fails it is reported, not fatal). */
  private async eachSentinel(run: (client: Redis) => Promise<unknown>): Promise<void> {
    await Promise.all(
      this.sentinels.map(async (s) => {
        const client = this.client(s.port);
        try {
          await run(client);
        } finally {
          client.disconnect();
        }
      }),
    );
  }

  private client(port: number): Redis {
    const client = new Redis({
      host: this.options.host,
      port,
      password: this.options.password,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    client.on("error", () => undefined);
    return client;
  }

  /**
   * The group follows another region's primary: the Sentinels forget the group (so they promote
   * nothing) and the group's primary replicates from `upstream`; its replicas keep following it.
   */
  async follow(upstream: { host: string; port: number }): Promise<void> {
    this.following = upstream;
    await this.eachSentinel((c) => c.call("SENTINEL", "REMOVE", sentinelMasterName).catch(() => undefined));
    const head = this.client(this.masterPort);
    try {
      await head.call("REPLICAOF", upstream.host, String(upstream.port));
    } finally {
      head.disconnect();
    }
  }

  /** The group takes writes again: its primary stops following, the Sentinels watch it. */
  async promote(): Promise<void> {
    const head = this.client(this.masterPort);
    try {
      await head.call("REPLICAOF", "NO", "ONE");
    } finally {
      head.disconnect();
    }
    this.following = undefined;
    const { host, password } = this.options;
    await this.eachSentinel(async (c) => {
      await c.call("SENTINEL", "REMOVE", sentinelMasterName).catch(() => undefined);
      await c.call(
        "SENTINEL",
        "MONITOR",
        sentinelMasterName,
        host,
        String(this.masterPort),
        String(SENTINEL_QUORUM),
      );
      await c.call(
        "SENTINEL",
        "SET",
        sentinelMasterName,
        "auth-pass",
        password,
        "down-after-milliseconds",
        String(this.options.downAfterMs ?? LOCAL_SENTINEL_TIMING.downAfterMs),
        "failover-timeout",
        String(this.options.failoverTimeoutMs ?? LOCAL_SENTINEL_TIMING.failoverTimeoutMs),
        "parallel-syncs",
        "1",
      );
    });
    const primary = this.nodes.find((n) => n.port === this.masterPort);
    if (primary) this.writeRecord({ primary: primary.name });
  }

  async stop(): Promise<void> {
    // A stopped process cannot act on SIGTERM: everything continues first.
    for (const az of [...this.impairedZones]) this.restoreZone(az);
    this.thaw();
    this.stopping = true;
    this.guard.stop();
    for (const t of this.restartTimers) clearTimeout(t);
    for (const watcher of this.failoverWatchers) watcher.disconnect();
    await this.endpoint?.stop();
    for (const subscriber of this.sentinelSubscribers) subscriber.disconnect();
    // Sentinels first: a primary stopping on purpose must not trigger a failover.
    await Promise.all(this.sentinels.map((s) => stopProcess(s.process)));
    // Remember who was primary and how far each node got, for the next `stayup up`.
    const primary = this.nodes.find((n) => n.port === this.masterPort);
    if (primary) this.writeRecord({ primary: primary.name, offsets: await this.sampleOffsets() });
    await Promise.all(this.nodes.map((n) => stopProcess(n.process)));
  }
}

/** Role and `master_repl_offset` of the node on `port`, or undefined if it does not answer. */
export async function replicationState(
  host: string,
  port: number,
  password: string,
): Promise<{ role: string; offset: number } | undefined> {
  const client = new Redis({ host, port, password, lazyConnect: true, retryStrategy: () => null });
  client.on("error", () => undefined);
  try {
    await client.connect();
    const info = await client.info("replication");
    const offset = /master_repl_offset:(\d+)/.exec(info);
    const role = /role:(\w+)/.exec(info);
    return offset && role ? { role: role[1] as string, offset: Number(offset[1]) } : undefined;
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

export async function replicationOffset(
  host: string,
  port: number,
  password: string,
): Promise<number | undefined> {
  return (await replicationState(host, port, password))?.offset;
}

/**
 * Records running nodes' roles and offsets (nodes left by a killed run, before they are stopped):
 * the next start then picks the newest copy, whichever node Sentinel promoted meanwhile.
 */
export async function writeReplicationRecordFromLive(
  dataDir: string,
  nodes: { name: string; port: number }[],
  password: string,
): Promise<ReplicationRecord | undefined> {
  const states = (
    await Promise.all(
      nodes.map(async (n) => ({ ...n, state: await replicationState("127.0.0.1", n.port, password) })),
    )
  ).filter((n) => n.state !== undefined) as { name: string; state: { role: string; offset: number } }[];
  if (states.length === 0) return undefined;
  const primaries = states.filter((n) => n.state.role === "master");
  const newestPrimary = primaries.sort((a, b) => b.state.offset - a.state.offset)[0];
  const record: ReplicationRecord = {
    primary: newestPrimary?.name,
    offsets: Object.fromEntries(states.map((n) => [n.name, n.state.offset])),
    updatedAt: new Date().toISOString(),
  };
  writePrivateFileAtomic(path.join(dataDir, replicationRecordFile), `${JSON.stringify(record, null, 2)}\n`);
  return record;
}

/** `answer`, or `otherwise` if it takes longer than `ms` (a stopped node never answers). */
async function answerWithin<T>(answer: Promise<T>, ms: number, otherwise: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      answer,
      new Promise<T>((resolve) => (timer = setTimeout(() => resolve(otherwise), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
