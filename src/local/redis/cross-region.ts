import { Redis } from "ioredis";
import type { CrossRegionRedis } from "../../stack/cross-region-redis.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";

/** What cross-region replication needs of one region's Redis group (single node or Sentinel group). */
export interface RegionRedisGroup {
  readonly host: string;
  /** The node taking the group's writes, or receiving the other region's stream. */
  readonly headPort: number;
  following?: { host: string; port: number };
  frozen: boolean;
  freeze(): void;
  thaw(): void;
  follow(upstream: { host: string; port: number }): Promise<void>;
  promote(): Promise<void>;
}

export interface CrossRegionStatus {
  mode: CrossRegionRedis;
  /** The region whose Redis takes writes (with `none`, each region writes its own). */
  writer: string;
  /**
   * How long the last write took to reach the other region (`replica` only): sampled every 250 ms
   * as the time until the follower's offset reaches the writer's. Undefined while not replicating.
   */
  replicationLagMs?: number;
  /** The follower's link to the writer is up. */
  linkUp?: boolean;
}

export interface CrossRegionOptions {
  mode: CrossRegionRedis;
  primary: { name: string; redis: RegionRedisGroup };
  secondary: { name: string; redis: RegionRedisGroup };
  password: string;
  events: EventPublisher;
  /** How long a failback waits for the primary region to catch up before giving up (retried). */
  catchUpTimeoutMs?: number;
}

/** `master_repl_offset`, role and the replica's link of the node on `port` (undefined: no answer). */
async function replicationInfo(
  host: string,
  port: number,
  password: string,
): Promise<{ role: string; offset: number; linkUp: boolean } | undefined> {
  // Bounded: a node of a region that is out of reach (stopped) must not hold the caller forever.
  const client = new Redis({
    host,
    port,
    password,
    lazyConnect: true,
    retryStrategy: () => null,
    connectTimeout: 1000,
    commandTimeout: 1000,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
    const info = await client.info("replication");
    const offset = /master_repl_offset:(\d+)/.exec(info);
    const role = /role:(\w+)/.exec(info);
    if (!offset || !role) return undefined;
    return {
      role: role[1] as string,
      offset: Number(offset[1]),
      linkUp: /master_link_status:up/.test(info),
    };
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Each region has its own Redis group; this decides what crosses between them. With `replica`, the
 * secondary's group follows the primary's (as an ElastiCache Global Datastore's secondary cluster),
 * a failover promotes it, and a failback first lets the primary region catch up: the secondary stops
 * taking writes (CLIENT PAUSE WRITE), the primary's offset reaches it, then the primary is promoted
 * and the secondary follows it, so no count acknowledged by the secondary is lost. With `none`
 * nothing crosses: each region counts from what it holds.
 */
export class CrossRegionReplication {
  writer: "primary" | "secondary" = "primary";
  private lagMs?: number;
  private linkUp?: boolean;
  private timer?: NodeJS.Timeout;
  private sampling = false;
  private readonly guard: ControllerGuard;

  constructor(readonly options: CrossRegionOptions) {
    this.guard = new ControllerGuard({ controller: "cross-region-redis", events: options.events });
  }

  private group(role: "primary" | "secondary") {
    return this.options[role];
  }

  /** Samples the replication lag while the secondary follows (replica mode only). */
  start(): void {
    if (this.options.mode !== "replica") return;
    this.guard.resume();
    this.timer = setInterval(
      this.guard.wrap(() => void this.sampleLag(), "the lag is sampled again at the next interval"),
      250,
    );
  }

  stop(): void {
    clearInterval(this.timer);
    this.guard.stop();
  }

  status(): CrossRegionStatus {
    return {
      mode: this.options.mode,
      writer: this.group(this.writer).name,
      ...(this.options.mode === "replica" ? { replicationLagMs: this.lagMs, linkUp: this.linkUp } : {}),
    };
  }

  /** Writer's offset now, then the time until the follower holds it (bounded by 2 s). */
  private async sampleLag(): Promise<void> {
    if (this.sampling) return;
    const writer = this.group(this.writer).redis;
    const follower = this.group(this.writer === "primary" ? "secondary" : "primary").redis;
    if (writer.frozen || follower.frozen || !follower.following) {
      this.lagMs = undefined;
      this.linkUp = undefined;
      return;
    }
    this.sampling = true;
    try {
      const { password } = this.options;
      const started = performance.now();
      const source = await replicationInfo(writer.host, writer.headPort, password);
      if (!source) return;
      for (;;) {
        const target = await replicationInfo(follower.host, follower.headPort, password);
        this.linkUp = target?.linkUp;
        if (target && target.linkUp && target.offset >= source.offset) {
          this.lagMs = Math.round(performance.now() - started);
          return;
        }
        if (performance.now() - started > 2000) {
          this.lagMs = Math.round(performance.now() - started);
          return;
        }
        await sleep(5);
      }
    } finally {
      this.sampling = false;
    }
  }

  /** A region is out of reach: its Redis processes stop where they are (SIGSTOP), data intact. */
  regionLost(name: string): void {
    const role = name === this.options.primary.name ? "primary" : "secondary";
    this.group(role).redis.freeze();
  }

  /**
   * A region is back. With `replica`, a region that is not the writer follows the writer before
   * its instances start, so no instance writes to a stale copy.
   */
  async regionBack(name: string): Promise<void> {
    const role = name === this.options.primary.name ? "primary" : "secondary";
    const { redis } = this.group(role);
    redis.thaw();
    if (this.options.mode !== "replica" || this.writer === role) return;
    const writer = this.group(this.writer).redis;
    await redis.follow({ host: writer.host, port: writer.headPort });
    this.options.events.publish({
      type: "redis.cross-region-following",
      region: name,
      writer: this.group(this.writer).name,
    });
  }

  /** Failover: the secondary's group takes writes (`replica`); with `none` it already does. */
  async promoteSecondary(): Promise<void> {
    if (this.options.mode !== "replica" || this.writer === "secondary") return;
    const lagMs = this.lagMs;
    await this.options.secondary.redis.promote();
    this.writer = "secondary";
    this.options.events.publish({
      type: "redis.cross-region-promoted",
      region: this.options.secondary.name,
      reason: "failover: the primary region failed its health check",
      replicationLagMs: lagMs ?? null,
    });
  }

  /** Whether the primary region's Redis must be handed writes back before the primary serves. */
  get awaitsFailback(): boolean {
    return this.options.mode === "replica" && this.writer === "secondary";
  }

  /**
   * The Redis half of the region health rule for the primary region while it follows the
   * secondary's: its group head answers, is a copy, and its link to the writer is up (it takes
   * writes once promoted). Locally the instances reach their Redis through its Sentinels, which
   * watch nothing while the group follows, so the failover probe asks here (on AWS the instances'
   * own /health/deep answers it through the primary endpoint; src/web-service/region-health.ts).
   */
  async primaryFollowingInSync(): Promise<boolean> {
    const { primary, password } = this.options;
    const info = await replicationInfo(primary.redis.host, primary.redis.headPort, password);
    return info !== undefined && info.role !== "master" && info.linkUp;
  }

  /**
   * Planned failback: the primary region catches up, then takes writes. Throws (to be retried)
   * if the primary's Redis is not following and in sync within the timeout.
   */
  async failBack(): Promise<void> {
    if (!this.awaitsFailback) return;
    const { password, primary, secondary, events } = this.options;
    const timeoutMs = this.options.catchUpTimeoutMs ?? 10_000;
    const caughtUp = async (deadline: number): Promise<number> => {
      for (;;) {
        const [source, target] = await Promise.all([
          replicationInfo(secondary.redis.host, secondary.redis.headPort, password),
          replicationInfo(primary.redis.host, primary.redis.headPort, password),
        ]);
        if (source && target?.linkUp && target.offset >= source.offset) return source.offset;
        if (Date.now() > deadline) {
          throw new Error(
            `${primary.name}'s Redis has not caught up with ${secondary.name}'s (link ${target?.linkUp ? "up" : "down"}, offset ${target?.offset ?? "-"} of ${source?.offset ?? "-"})`,
          );
        }
        await sleep(20);
      }
    };
    // Caught up under writes first (the bulk), then with the secondary's writes paused (the rest).
    await caughtUp(Date.now() + timeoutMs);
    const fence = new Redis({
      host: secondary.redis.host,
      port: secondary.redis.headPort,
      password,
      retryStrategy: () => null,
    });
    fence.on("error", () => undefined);
    try {
      // Held writes wait (the instances hold a count up to 4 s) rather than land on a copy that is
      // about to become a replica; the pause ends by itself if this process dies meanwhile.
      await fence.call("CLIENT", "PAUSE", String(timeoutMs), "WRITE");
      const offset = await caughtUp(Date.now() + timeoutMs);
      await primary.redis.promote();
      await secondary.redis.follow({ host: primary.redis.host, port: primary.redis.headPort });
      this.writer = "primary";
      events.publish({
        type: "redis.cross-region-failback",
        region: primary.name,
        caughtUpToOffset: offset,
      });
    } finally {
      await fence.call("CLIENT", "UNPAUSE").catch(() => undefined);
      fence.disconnect();
    }
  }
}
