import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { localRedisMaxClients, localRedisPassword } from "../src/local/redis/process.ts";
import { SENTINELS_PER_REGION } from "../src/stack/derived.ts";
import { testRedisReplication } from "./helpers.ts";

/** Local Redis and Sentinels answer only to the generated password, kept 0600 and reused. */
describe("local Redis password", { timeout: 120_000 }, () => {
  const { stateDir, password, redis } = testRedisReplication();
  const clients: Redis[] = [];
  const connect = (port: number, pass?: string) => {
    const c = new Redis({
      host: "127.0.0.1",
      port,
      password: pass,
      lazyConnect: true,
      // The ready check sends INFO, which an unauthenticated client may not: connect without it.
      enableReadyCheck: false,
      retryStrategy: () => null,
    });
    c.on("error", () => undefined);
    clients.push(c);
    return c;
  };

  before(async () => {
    await redis.start();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await redis.stop();
  });

  it("is generated once, kept 0600 under the state folder, and reused", () => {
    assert.match(password, /^[0-9a-f]{48}$/);
    assert.equal(statSync(path.join(stateDir, "redis", "password")).mode & 0o777, 0o600);
    assert.equal(localRedisPassword(stateDir), password);
  });

  it("every Redis node refuses commands without it and accepts them with it", async () => {
    assert.ok(redis.nodes.length >= 2);
    for (const node of redis.nodes) {
      const anonymous = connect(node.port);
      await anonymous.connect();
      await assert.rejects(anonymous.get("count"), /NOAUTH/);
      await assert.rejects(anonymous.call("INFO", "replication"), /NOAUTH/);
      await assert.rejects(anonymous.auth("not-the-password"), /WRONGPASS|invalid password/i);
      const user = connect(node.port, password);
      await user.connect();
      assert.equal(await user.ping(), "PONG");
    }
  });

  it("every Sentinel refuses commands without it (it would name the primary)", async () => {
    const sentinels = (redis.environment().STAYUP_REDIS_SENTINELS ?? "").split(",");
    assert.equal(sentinels.length, SENTINELS_PER_REGION);
    for (const hostPort of sentinels) {
      const port = Number(hostPort.split(":")[1]);
      const anonymous = connect(port);
      await anonymous.connect();
      await assert.rejects(anonymous.call("SENTINEL", "get-master-addr-by-name", "stayup"), /NOAUTH/);
      const user = connect(port, password);
      await user.connect();
      const addr = (await user.call("SENTINEL", "get-master-addr-by-name", "stayup")) as string[];
      assert.equal(Number(addr[1]), redis.masterPort);
    }
  });

  it("instances get it through their environment, not on a command line", () => {
    assert.equal(redis.environment().STAYUP_REDIS_PASSWORD, password);
    assert.doesNotMatch(redis.url, new RegExp(password));
  });

  it("every node and Sentinel runs with the local limit of clients, not Redis's 10 000", async () => {
    for (const node of redis.nodes) {
      const user = connect(node.port, password);
      await user.connect();
      assert.deepEqual(await user.config("GET", "maxclients"), ["maxclients", String(localRedisMaxClients)]);
    }
    // A Sentinel has no CONFIG GET: the settings it runs with are in the sentinel.conf it rewrites.
    for (const hostPort of (redis.environment().STAYUP_REDIS_SENTINELS ?? "").split(",")) {
      const user = connect(Number(hostPort.split(":")[1]), password);
      await user.connect();
      const configFile = /config_file:(.+)/.exec(await user.info("server"))?.[1]?.trim() ?? "";
      assert.match(readFileSync(configFile, "utf8"), new RegExp(`^maxclients ${localRedisMaxClients}$`, "m"));
    }
  });
});
