import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { request } from "undici";
import { sleep, findFreePort } from "../src/shared/net.ts";
import { REGION_HEALTH_CHECK_PATH } from "../src/stack/derived.ts";
import { bundleWebService } from "../src/web-service/bundle.ts";
import { startWebService, TestRedis, tempDir, waitFor } from "./helpers.ts";

const get = async (url: string, headers: Record<string, string> = {}) => {
  const res = await request(url, { headers });
  return { status: res.statusCode, text: await res.body.text(), headers: res.headers };
};

describe("web service", () => {
  let entry: string;
  let redis: TestRedis;
  let instance: { child: ChildProcess; url: string };

  before(async () => {
    entry = await bundleWebService(tempDir());
    redis = await TestRedis.start();
    instance = await startWebService({ modulePath: entry, args: [] }, redis.port);
  });
  after(async () => {
    instance?.child.kill("SIGKILL");
    await redis?.stop();
  });

  it("GET / increments the shared counter and names the serving instance, AZ and region", async () => {
    const a = JSON.parse((await get(`${instance.url}/`)).text);
    const b = JSON.parse((await get(`${instance.url}/`)).text);
    assert.equal(b.count, a.count + 1);
    assert.deepEqual(
      { instanceId: b.instanceId, availabilityZone: b.availabilityZone, region: b.region },
      { instanceId: "i-test0001", availabilityZone: "eu-west-3a", region: "eu-west-3" },
    );
    // The counter lives in Redis under one key (the seed script incremented a key named "1").
    const direct = new Redis({ port: redis.port });
    assert.equal(Number(await direct.get("count")), b.count);
    assert.equal(await direct.exists("1"), 0);
    direct.disconnect();
  });

  it("serves an HTML page to browsers", async () => {
    const res = await get(`${instance.url}/`, { accept: "text/html" });
    assert.match(res.headers["content-type"] as string, /text\/html/);
    assert.match(res.text, /<span id="count">\d+<\/span>/);
    assert.match(res.text, /i-test0001/);
  });

  it("exposes Prometheus metrics", async () => {
    const res = await get(`${instance.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.text, /stayup_http_requests_total\{route="\/",status="200"/);
    assert.match(res.text, /stayup_redis_connected\{[^}]*\} 1/);
  });

  it("Redis down: / answers 503 with a reason, /health stays 200; Redis back: 200 without a restart", async () => {
    const pid = instance.child.pid;
    await redis.stop();
    const down = await waitFor("a 503", async () => {
      const r = await get(`${instance.url}/`);
      return r.status === 503 ? r : undefined;
    });
    assert.match(JSON.parse(down.text).reason, /redis unavailable/);
    assert.equal(down.headers["retry-after"], "1");
    assert.equal((await get(`${instance.url}/health`)).status, 200, "health never depends on Redis");
    const deep = await get(`${instance.url}${REGION_HEALTH_CHECK_PATH}`);
    assert.equal(deep.status, 503, "the region check does: the region cannot serve a count");
    assert.match(JSON.parse(deep.text).reason, /^redis: /);

    await redis.start();
    const upAgain = await waitFor("a 200 after Redis restarted", async () => {
      const r = await get(`${instance.url}/`);
      return r.status === 200 ? r : undefined;
    });
    assert.equal(typeof JSON.parse(upAgain.text).count, "number");
    assert.equal((await get(`${instance.url}${REGION_HEALTH_CHECK_PATH}`)).status, 200);
    assert.equal(instance.child.pid, pid);
    assert.equal(instance.child.exitCode, null, "the instance process never exited");
  });

  it("Redis down at startup: the instance still starts, answers 503, and heals when Redis appears", async () => {
    const late = new TestRedis(await findFreePort());
    const lonely = await startWebService({ modulePath: entry, args: [] }, late.port);
    try {
      const res = await get(`${lonely.url}/`);
      assert.equal(res.status, 503);
      assert.match(JSON.parse(res.text).reason, /redis unavailable: .*ECONNREFUSED/);
      await late.start();
      await waitFor("a 200 once Redis exists", async () =>
        (await get(`${lonely.url}/`)).status === 200 ? true : undefined,
      );
    } finally {
      lonely.child.kill("SIGKILL");
      await late.stop();
    }
  });

  it("the region health check proves a Redis write, and answers 503 within its bound when Redis stalls", async () => {
    const ok = await get(`${instance.url}${REGION_HEALTH_CHECK_PATH}`);
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.text).status, "ok");
    const admin = new Redis({ port: redis.port });
    assert.ok(Number(await admin.pttl("stayup:health:i-test0001")) > 0, "the check wrote its key");
    // Redis holds every write for 5 s: the check must answer 503 well before that, not hang.
    await admin.call("CLIENT", "PAUSE", "5000", "WRITE");
    try {
      const stalled = await get(`${instance.url}${REGION_HEALTH_CHECK_PATH}`);
      assert.equal(stalled.status, 503);
      assert.match(JSON.parse(stalled.text).reason, /no answer within 1000 ms/);
    } finally {
      await admin.call("CLIENT", "UNPAUSE");
      admin.disconnect();
    }
  });

  it("SIGTERM: refuses new connections, finishes the request in flight, then exits 0", async () => {
    // Make Redis hold the next command for 1 s, so a request is in flight when SIGTERM arrives.
    const admin = new Redis({ port: redis.port });
    const sleeping = admin.call("DEBUG", "SLEEP", "1").catch(() => undefined);
    await sleep(50);
    const inFlight = get(`${instance.url}/`);
    await sleep(150);
    const exited = new Promise<number | null>((resolve) => instance.child.once("exit", resolve));
    instance.child.kill("SIGTERM");
    await sleep(100);
    await assert.rejects(request(`${instance.url}/health`, { reset: true }), /ECONNREFUSED/);
    const res = await inFlight;
    assert.equal(res.status, 200, "the in-flight request completed");
    assert.equal(typeof JSON.parse(res.text).count, "number");
    assert.equal(await exited, 0);
    await sleeping;
    admin.disconnect();
  });
});
