import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { sentinelMasterName } from "../src/local/redis/replication.ts";
import { SENTINELS_PER_REGION } from "../src/stack/derived.ts";
import {
  LOCAL_SENTINEL_TIMING,
  SENTINEL_PING_PERIOD_MS,
  SENTINEL_RECONNECT_MARGIN_MS,
} from "../src/stack/region-failover-timing.ts";
import { redisCall, testRedisReplication, waitFor } from "./helpers.ts";

/**
 * The region's Sentinels (SENTINELS_PER_REGION, regional processes in no zone, as ElastiCache's
 * failover is decided by AWS's regional control plane) are supervised: when one exits, the runtime
 * starts it again on its port from the sentinel.conf it rewrote, so it still knows the primary and
 * the replicas, and it learns a failover the others made while it was away.
 */
describe("the region's Sentinel, supervised", { timeout: 120_000 }, () => {
  const { stateDir, password, redis, seen } = testRedisReplication();
  before(async () => {
    await redis.start();
  });
  after(async () => {
    await redis.stop();
  });

  /** One SENTINEL command to the Sentinel on `port`; undefined if it is unreachable or refuses. */
  const askSentinel = (port: number, ...args: string[]): Promise<unknown> =>
    redisCall(port, password, "SENTINEL", ...args).catch(() => undefined);

  /** The primary according to one Sentinel (the ones still running are the truth here). */
  const namedBy = async (port: number): Promise<number | undefined> => {
    const addr = (await askSentinel(port, "get-master-addr-by-name", sentinelMasterName)) as
      string[] | undefined;
    return addr?.[1] ? Number(addr[1]) : undefined;
  };

  const sentinelEvents = (event: string) =>
    seen.filter((e) => e.type === "redis.sentinel" && e.event === event).length;

  it("are SENTINELS_PER_REGION, and one that exits is started again on its port, still naming the primary", async () => {
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

  it("killed with the primary, it is back and promotes a replica; redis.failover, the old primary restarted as a replica", async () => {
    await waitFor(
      "replicas in sync",
      () => redis.nodeStatus().every((n) => n.role === "primary" || n.inSync) || undefined,
    );
    const [sentinel] = redis.sentinelStatus();
    const primary = redis.nodeStatus().find((n) => n.role === "primary");
    assert.ok(sentinel?.pid && primary?.pid);
    process.kill(sentinel.pid, "SIGKILL");
    process.kill(primary.pid, "SIGKILL");
    // Restarted from its rewritten sentinel.conf, the region's one Sentinel still knows the replicas:
    // it calls the dead primary down and promotes one before the runtime would restart it in place.
    const failover = await waitFor(
      "redis.failover from the controller",
      () => seen.find((e) => e.type === "redis.failover"),
      30_000,
    );
    assert.ok(failover.type === "redis.failover" && failover.fromPort === primary.port);
    const restarted = await waitFor("the killed Sentinel running again", () => {
      const now = redis.sentinelStatus().find((x) => x.port === sentinel.port);
      return now?.pid && now.pid !== sentinel.pid ? now : undefined;
    });
    await waitFor(
      "the restarted Sentinel naming the promoted replica",
      async () => ((await namedBy(restarted.port)) === failover.toPort ? true : undefined),
      30_000,
    );
    assert.equal(redis.masterPort, failover.toPort);
    await waitFor(
      "the old primary back as a replica",
      () =>
        redis.nodeStatus().find((n) => n.port === primary.port && n.role === "replica" && n.pid) ?? undefined,
      30_000,
    );
    // Each Sentinel's own log kept its decisions (they went to an ignored stdout before).
    const logs = redis
      .sentinelStatus()
      .map((x) => readFileSync(path.join(stateDir, "redis", "test", x.name, "redis.log"), "utf8"));
    assert.ok(
      logs.some((log) => log.includes(`+switch-master ${sentinelMasterName} 127.0.0.1 ${primary.port}`)),
      "a Sentinel's redis.log has the switch",
    );
  });

  it("give a new primary more than their reconnect pace: down-after-milliseconds is a ping period and a margin", async () => {
    // At a switch a Sentinel restarts the new primary's down-after clock but reconnects to it only
    // a ping period after its last try at the dead one: down-after 1 s called live primaries down.
    for (const x of redis.sentinelStatus()) {
      const master = (await askSentinel(x.port, "master", sentinelMasterName)) as string[];
      const downAfter = Number(master[master.indexOf("down-after-milliseconds") + 1]);
      assert.equal(downAfter, LOCAL_SENTINEL_TIMING.downAfterMs);
      assert.ok(downAfter >= SENTINEL_PING_PERIOD_MS + SENTINEL_RECONNECT_MARGIN_MS);
      // The ping period assumed is the installed Redis's (Redis 7 reports it; Redis 6 cannot).
      const debug = (await askSentinel(x.port, "debug")) as string[] | undefined;
      if (debug) assert.equal(Number(debug[debug.indexOf("PING-PERIOD") + 1]), SENTINEL_PING_PERIOD_MS);
    }
  });

  it("a live primary called down is explained: redis.primary-seen-down with the Sentinel's view and the node's log", async () => {
    await waitFor(
      "replicas in sync",
      () => redis.nodeStatus().every((n) => n.role === "primary" || n.inSync) || undefined,
      30_000,
    );
    const primary = redis.nodeStatus().find((n) => n.role === "primary");
    assert.ok(primary?.pid);
    // Stopped, not killed: it runs, and answers nobody for longer than down-after.
    process.kill(primary.pid, "SIGSTOP");
    try {
      await waitFor(
        "a Sentinel's +sdown of the stopped primary",
        () =>
          seen.find(
            (e) =>
              e.type === "redis.sentinel" && e.event === "+sdown" && e.detail.endsWith(` ${primary.port}`),
          ),
        30_000,
      );
    } finally {
      process.kill(primary.pid, "SIGCONT");
    }
    const explained = await waitFor(
      "redis.primary-seen-down",
      () => seen.find((e) => e.type === "redis.primary-seen-down" && e.port === primary.port),
      30_000,
    );
    assert.ok(explained.type === "redis.primary-seen-down");
    assert.equal(explained.az, primary.az);
    assert.match(explained.sentinelSaw.flags ?? "", /s_down/);
    assert.ok(explained.nodeLog.length > 0, "the node's log's last lines");
  });
});

/**
 * A node stopped with its zone (az-outage) is out of reach because of the fault: a Sentinel's
 * +sdown of it is not "a live node called down" (redis.primary-seen-down would say it ran without
 * a stall, as its latency report is empty).
 */
describe(
  "a node stopped with its zone is not explained as a live node seen down",
  { timeout: 120_000 },
  () => {
    const { redis, seen } = testRedisReplication();
    before(async () => {
      await redis.start();
    });
    after(async () => {
      await redis.stop();
    });

    it("publishSeenDown says nothing of a node in an impaired zone", async () => {
      const replica = redis.nodeStatus().find((n) => n.role !== "primary");
      const sentinel = redis.sentinelStatus()[0];
      assert.ok(replica && sentinel);
      const stopped = redis.impairZone(replica.az);
      assert.deepEqual(
        stopped.map((n) => n.port),
        [replica.port],
      );
      try {
        // What a Sentinel's +sdown of it sets off (called directly: the replica's +sdown is not about
        // a primary, and a primary's zone would cost a failover here).
        await (
          redis as unknown as {
            publishSeenDown: (s: { name: string; port: number }, port: number) => Promise<void>;
          }
        ).publishSeenDown(sentinel, replica.port);
      } finally {
        redis.restoreZone(replica.az);
      }
      assert.equal(
        seen.find((e) => e.type === "redis.primary-seen-down"),
        undefined,
        "a node stopped with its zone is explained by the outage",
      );
      assert.ok(seen.some((e) => e.type === "redis.zone-restored" && e.port === replica.port));
    });

    it("a zone impaired while Redis stops stops none of its nodes (each still acts on its SIGTERM)", async () => {
      const az = redis.nodeStatus()[0]?.az as string;
      const impairedBefore = seen.filter((e) => e.type === "redis.zone-impaired").length;
      const stopping = redis.stop();
      assert.deepEqual(redis.impairZone(az), [], "nothing stopped once stopping");
      await stopping;
      assert.equal(seen.filter((e) => e.type === "redis.zone-impaired").length, impairedBefore);
    });
  },
);
