import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";
import { localRedisPassword } from "../src/local/redis/process.ts";
import { RedisReplicationController, sentinelMasterName } from "../src/local/redis/replication.ts";
import { SENTINELS_PER_REGION } from "../src/stack/derived.ts";
import { tempDir, waitFor } from "./helpers.ts";

/**
 * The region's one Sentinel (SENTINELS_PER_REGION: a regional process in no zone, as ElastiCache's
 * failover is decided by AWS's regional control plane) is supervised: when it exits, the runtime
 * starts it again on its port from the sentinel.conf it rewrote, so it still knows the primary and
 * the replicas. Killed together with the primary, it is back in time to promote a replica, and the
 * controller hears the switch through its subscriptions to the restarted Sentinel (the old test
 * here, "a failover seen with the first Sentinel stopped", was about three Sentinels: the
 * controller listened on the first only).
 */
describe("the region's Sentinel, supervised", { timeout: 120_000 }, () => {
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
  before(async () => {
    await redis.start();
  });
  after(async () => {
    await redis.stop();
  });

  /** One SENTINEL command to the Sentinel on `port`; undefined if it is unreachable or refuses. */
  const askSentinel = async (port: number, ...args: string[]): Promise<unknown> => {
    const client = new Redis({
      host: "127.0.0.1",
      port,
      password,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    client.on("error", () => undefined);
    try {
      await client.connect();
      return await client.call("SENTINEL", ...args);
    } catch {
      return undefined;
    } finally {
      client.disconnect();
    }
  };

  /** The primary according to one Sentinel (the ones still running are the truth here). */
  const namedBy = async (port: number): Promise<number | undefined> => {
    const addr = (await askSentinel(port, "get-master-addr-by-name", sentinelMasterName)) as
      string[] | undefined;
    return addr?.[1] ? Number(addr[1]) : undefined;
  };

  const sentinelEvents = (event: string) =>
    seen.filter((e) => e.type === "redis.sentinel" && e.event === event).length;

  it("is one, and is started again on its port when it exits, still naming the primary", async () => {
    assert.equal(redis.sentinelStatus().length, SENTINELS_PER_REGION);
    await waitFor(
      "replicas in sync",
      () => redis.nodeStatus().every((n) => n.role === "primary" || n.inSync) || undefined,
    );
    // Its rewritten sentinel.conf names the replicas it found (what a restart starts from).
    await waitFor("the Sentinel to know both replicas", async () => {
      const [sentinel] = redis.sentinelStatus();
      const replicas = (await askSentinel(sentinel!.port, "replicas", sentinelMasterName)) as unknown[];
      return replicas?.length === 2 || undefined;
    });
    const [sentinel] = redis.sentinelStatus();
    assert.ok(sentinel?.pid);
    process.kill(sentinel.pid, "SIGKILL");
    const restarted = await waitFor("the Sentinel started again", () => {
      const [now] = redis.sentinelStatus();
      return now?.pid && now.pid !== sentinel.pid ? now : undefined;
    });
    assert.equal(restarted.port, sentinel.port, "on the same port (the instances' STAYUP_REDIS_SENTINELS)");
    assert.equal(await namedBy(restarted.port), redis.masterPort);
    assert.equal(sentinelEvents("exited"), 1);
    await waitFor("redis.sentinel restarted", () => sentinelEvents("restarted") === 1 || undefined);
  });

  it("killed with the primary, it is back to promote a replica: redis.failover, the old primary restarted as its replica", async () => {
    await waitFor(
      "replicas in sync",
      () => redis.nodeStatus().every((n) => n.role === "primary" || n.inSync) || undefined,
    );
    const [sentinel] = redis.sentinelStatus();
    const primary = redis.nodeStatus().find((n) => n.role === "primary");
    assert.ok(sentinel?.pid && primary?.pid);
    process.kill(sentinel.pid, "SIGKILL");
    process.kill(primary.pid, "SIGKILL");

    const failover = await waitFor(
      "redis.failover from the controller",
      () => seen.find((e) => e.type === "redis.failover"),
      30_000,
    );
    assert.ok(failover.type === "redis.failover" && failover.fromPort === primary.port);
    const [restarted] = redis.sentinelStatus();
    assert.ok(restarted?.pid && restarted.pid !== sentinel.pid, "the Sentinel runs again");
    const promoted = await namedBy(restarted.port);
    assert.equal(failover.toPort, promoted, "the node the Sentinel promoted");
    assert.equal(redis.masterPort, promoted);
    await waitFor(
      "the old primary back as a replica",
      () =>
        redis.nodeStatus().find((n) => n.port === primary.port && n.role === "replica" && n.pid) ?? undefined,
      30_000,
    );
  });
});
