import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { whyNotPromoted } from "../src/drills/redis-failover.ts";
import { redisCall, testRedisReplication, waitFor } from "./helpers.ts";

/**
 * Issue 25, item 3: after a failover, every replica that is in sync according to Redis itself
 * (`INFO replication`: its link up to the new primary) is in sync in status too, the one that
 * stayed up through the failover (Sentinel re-points it, nothing restarts it) included.
 */
describe("replica health after a failover", { timeout: 120_000 }, () => {
  const { password, redis } = testRedisReplication();
  before(async () => {
    await redis.start();
  });
  after(async () => {
    await redis.stop();
  });

  const linkUp = async (port: number): Promise<boolean> =>
    /master_link_status:up/.test(
      String(await redisCall(port, password, "INFO", "replication").catch(() => "")),
    );

  it("status shows each replica in sync once its link to the new primary is up", async () => {
    await waitFor(
      "both replicas in sync at start",
      () => redis.nodeStatus().every((n) => n.role === "primary" || n.inSync) || undefined,
    );
    const primary = redis.nodeStatus().find((n) => n.role === "primary");
    assert.ok(primary?.pid);
    process.kill(primary.pid, "SIGKILL");
    await waitFor("a replica promoted", () => (redis.masterPort !== primary.port ? true : undefined), 30_000);
    // Every node up again (the old primary restarted as a replica) and linked to the new primary.
    await waitFor(
      "every replica's link up according to INFO replication",
      async () => {
        const replicas = redis.nodeStatus().filter((n) => n.role === "replica");
        if (replicas.length !== 2) return undefined;
        return (await Promise.all(replicas.map((n) => linkUp(n.port)))).every(Boolean) || undefined;
      },
      30_000,
    );
    await waitFor(
      "status to agree with INFO replication",
      () => redis.nodeStatus().every((n) => n.role === "primary" || n.inSync) || undefined,
      10_000,
    ).catch(() => undefined);
    assert.deepEqual(
      redis
        .nodeStatus()
        .filter((n) => n.role === "replica")
        .map((n) => ({ name: n.name, inSync: n.inSync })),
      redis
        .nodeStatus()
        .filter((n) => n.role === "replica")
        .map((n) => ({ name: n.name, inSync: true })),
    );
  });
});

/**
 * Issue 25, item 2: when Sentinel promotes no replica, the drill's report says why, from what the
 * Sentinels published. Here no replica may be promoted (priority 0 on both): the Sentinels agree the
 * primary is down, find no replica fit, and the controller restarts the old primary, publishing
 * Sentinel's view of the nodes as it does.
 */
describe("no promotion: Sentinel's reasons reach the events", { timeout: 120_000 }, () => {
  const { password, redis, seen } = testRedisReplication();
  before(async () => {
    await redis.start();
  });
  after(async () => {
    await redis.stop();
  });

  it("-failover-abort-no-good-slave and the view of the replicas, read as the reason", async () => {
    await waitFor(
      "replicas in sync",
      () => redis.nodeStatus().every((n) => n.role === "primary" || n.inSync) || undefined,
    );
    for (const n of redis.nodeStatus().filter((r) => r.role === "replica")) {
      const client = new Redis({ host: "127.0.0.1", port: n.port, password });
      await client.config("SET", "replica-priority", "0");
      client.disconnect();
    }
    const primary = redis.nodeStatus().find((n) => n.role === "primary");
    assert.ok(primary?.pid);
    const killedAt = Date.now();
    process.kill(primary.pid, "SIGKILL");
    await waitFor(
      "Sentinel's view published when the old primary is restarted",
      () => seen.find((e) => e.type === "redis.sentinel-view") ?? undefined,
      60_000,
    );
    assert.ok(
      seen.some((e) => e.type === "redis.sentinel" && e.event === "+odown"),
      "the Sentinels agreed it was down",
    );
    const why = whyNotPromoted(seen, killedAt);
    assert.match(why.whyNotPromoted, /no replica was fit to promote/);
    assert.match(why.whyNotPromoted, /replica \d+: slave/);
    assert.ok(
      why.sentinelDecisions.some((d) => /-failover-abort-no-good-slave/.test(d)),
      why.sentinelDecisions.join("\n"),
    );
    assert.equal(redis.masterPort, primary.port, "no promotion happened");
  });
});
