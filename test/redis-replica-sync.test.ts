import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { testRedisReplication, waitFor } from "./helpers.ts";

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

  const linkUp = async (port: number): Promise<boolean> => {
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
      return /master_link_status:up/.test(await client.info("replication"));
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  };

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
