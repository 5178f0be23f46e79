/**
 * The region health check's rule (issue 24): a region serves if its Redis answers and takes writes
 * when it is the writer; a read-only copy following the other region's, its link up, passes (it
 * takes writes once promoted), so a primary region that came back following the secondary's can
 * be seen healthy and failed back to. The same endpoint is Route 53's check on AWS. Real
 * redis-server processes on free ports.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { REGION_HEALTH_CHECK_PATH } from "../src/stack/derived.ts";
import { regionHealth, regionRedisVerdict } from "../src/web-service/region-health.ts";
import { TestRedis, waitFor } from "./helpers.ts";

describe("region health: the rule", () => {
  it("a writer that takes the write serves", () => {
    assert.deepEqual(regionRedisVerdict({ replicationInfo: "role:master\r\n" }), {
      serves: true,
      redis: "writable",
    });
  });
  it("a writer that refuses the write does not (writes are required of the writer)", () => {
    const v = regionRedisVerdict({
      replicationInfo: "role:master\r\n",
      writeError: "NOREPLICAS Not enough good replicas to write.",
    });
    assert.equal(v.serves, false);
  });
  it("a copy following its writer, link up, serves once promoted", () => {
    const v = regionRedisVerdict({ replicationInfo: "role:slave\r\nmaster_link_status:up\r\n" });
    assert.equal(v.serves, true);
    assert.equal(v.serves && v.redis, "following");
  });
  it("a copy whose link is down has not caught up: it does not serve", () => {
    const v = regionRedisVerdict({ replicationInfo: "role:slave\r\nmaster_link_status:down\r\n" });
    assert.equal(v.serves, false);
  });
  it("a READONLY answer with the link's state hidden (managed Redis) is a reachable copy", () => {
    const v = regionRedisVerdict({
      writeError: "READONLY You can't write against a read only replica.",
    });
    assert.equal(v.serves, true);
  });
  it("no answer at all does not serve", () => {
    assert.equal(regionRedisVerdict({ writeError: "Connection is closed." }).serves, false);
  });
});

describe("region health: the endpoint on real Redis", { timeout: 60_000 }, () => {
  let writer: TestRedis;
  let copy: TestRedis;
  let app: FastifyInstance;
  let client: Redis;
  let base: string;

  before(async () => {
    [writer, copy] = await Promise.all([TestRedis.start(), TestRedis.start()]);
    // As the instance's client: its region's Redis, failing fast while disconnected.
    client = new Redis({
      port: copy.port,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 50,
    });
    client.on("error", () => undefined);
    await waitFor("the client ready", () => client.status === "ready");
    app = Fastify();
    await app.register(regionHealth, { redis: client, instanceId: "i-test", timeoutMs: 2000 });
    base = await app.listen({ host: "127.0.0.1", port: 0 });
  });
  after(async () => {
    await app?.close();
    client?.disconnect();
    await Promise.all([writer?.stop(), copy?.stop()]);
  });

  const check = async () => {
    const res = await fetch(`${base}${REGION_HEALTH_CHECK_PATH}`);
    return { status: res.status, body: (await res.json()) as { redis?: string; reason?: string } };
  };
  const admin = (port: number) => {
    const r = new Redis({ port, lazyConnect: true, retryStrategy: () => null });
    r.on("error", () => undefined);
    return r;
  };

  it("its region's Redis the writer: 200, writable", async () => {
    const r = await check();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.redis, "writable");
  });

  it("following the other region's Redis, link up: 200, following (the primary region back after a failover)", async () => {
    const a = admin(copy.port);
    await a.replicaof("127.0.0.1", writer.port);
    await waitFor("the copy's link up", async () =>
      /master_link_status:up/.test(await a.info("replication")),
    );
    a.disconnect();
    const r = await check();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.redis, "following");
  });

  it("following a writer that is gone (link down, not caught up): 503", async () => {
    await writer.stop();
    const a = admin(copy.port);
    await waitFor("the copy's link down", async () =>
      /master_link_status:down/.test(await a.info("replication")),
    );
    a.disconnect();
    const r = await check();
    assert.equal(r.status, 503);
    assert.match(r.body.reason ?? "", /link .* down/);
  });

  it("promoted, it must take the write: a writer refusing writes is 503", async () => {
    const a = admin(copy.port);
    await a.replicaof("NO", "ONE");
    // A writer that needs a replica's acknowledgement it cannot get refuses every write.
    await a.config("SET", "min-replicas-to-write", "1");
    const refused = await check();
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.match(refused.body.reason ?? "", /NOREPLICAS/);
    await a.config("SET", "min-replicas-to-write", "0");
    a.disconnect();
    const r = await check();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.redis, "writable");
  });
});
