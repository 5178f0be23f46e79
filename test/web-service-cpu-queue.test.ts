import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import { setMaxListeners } from "node:events";
import { after, before, describe, it } from "node:test";
import { Pool } from "undici";
import { REGION_HEALTH_CHECK_PATH } from "../src/stack/derived.ts";
import { bundleWebService } from "../src/web-service/bundle.ts";
import { loadSecretHeader } from "../src/web-service/load-secret.ts";
import { TestRedis, tempDir, waitFor } from "./helpers.ts";

/**
 * Issue 13 items 2 and 4, on one instance: CPU-heavy requests wait their turn in the CPU queue, so
 * the health checks of a busy instance are answered between two of them (a busy region is not taken
 * for a dead one), and the work of a request whose client left while it waited is skipped.
 */
/** What the load drill sends: instances serve /load only with it (see load-secret.ts). */
const loadSecret = "cpu-queue-test-secret";
const loadHeaders = { [loadSecretHeader]: loadSecret };

describe("web service under CPU load", { timeout: 180_000 }, () => {
  let redis: TestRedis;
  let child: ChildProcess;
  let pool: Pool;

  before(async () => {
    const entry = await bundleWebService(tempDir());
    redis = await TestRedis.start();
    child = fork(entry, [], {
      env: {
        ...process.env,
        STAYUP_INSTANCE_ID: "i-cpuqueue01",
        STAYUP_AZ: "eu-west-3a",
        STAYUP_REGION: "eu-west-3",
        STAYUP_REDIS_URL: `redis://127.0.0.1:${redis.port}`,
        STAYUP_LOAD_SECRET: loadSecret,
        HOST: "127.0.0.1",
        PORT: "0",
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.on(
        "message",
        (m: { type?: string; port?: number }) => m.type === "listening" && resolve(m.port ?? 0),
      );
      child.once("exit", (code) => reject(new Error(`instance exited with ${code}`)));
    });
    // One connection per request, as the load balancer's pool opens them under load.
    pool = new Pool(`http://127.0.0.1:${port}`, { connections: 64, headersTimeout: 120_000 });
  });
  after(async () => {
    await pool?.destroy();
    child?.kill("SIGKILL");
    await redis?.stop();
  });

  const skippedSoFar = async (): Promise<number> => {
    const res = await pool.request({ path: "/metrics", method: "GET" });
    const text = await res.body.text();
    return Number(/^stayup_load_skipped_total(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0);
  };

  it("/load burns nothing for a request without the load secret: 404, as if it did not exist", async () => {
    for (const headers of [{}, { [loadSecretHeader]: "a-guess" }, { [loadSecretHeader]: `${loadSecret}x` }]) {
      const res = await pool.request({ path: "/load?cpuMs=50", method: "GET", headers });
      assert.equal(res.statusCode, 404, JSON.stringify(headers));
      assert.doesNotMatch(await res.body.text(), /spins/);
    }
    const res = await pool.request({ path: "/load?cpuMs=1", method: "GET", headers: loadHeaders });
    assert.equal(res.statusCode, 200);
    assert.match(await res.body.text(), /"spins"/);
  });

  it("health checks are answered while CPU-heavy requests queue, before the queue is through", async () => {
    const order: string[] = [];
    const load = Array.from({ length: 30 }, async () => {
      const res = await pool.request({ path: "/load?cpuMs=100", method: "GET", headers: loadHeaders });
      await res.body.dump();
      order.push("load");
      return res.statusCode;
    });
    // Let the CPU requests reach the instance before the checks.
    await waitFor("the first load answer", () => (order.length > 0 ? true : undefined), 60_000);
    const checks = ["/health", REGION_HEALTH_CHECK_PATH].map(async (path) => {
      const res = await pool.request({ path, method: "GET" });
      await res.body.dump();
      order.push(path);
      return res.statusCode;
    });
    assert.deepEqual(await Promise.all(checks), [200, 200]);
    const statuses = await Promise.all(load);
    assert.ok(
      statuses.every((s) => s === 200),
      `every load request answered: ${statuses.join(",")}`,
    );
    const lastCheck = Math.max(order.indexOf("/health"), order.indexOf(REGION_HEALTH_CHECK_PATH));
    assert.ok(
      lastCheck < order.length - 1,
      `checks answered before the last load request: ${order.join(" ")}`,
    );
  });

  it("a queued request whose client left is not worked on", async () => {
    const before = await skippedSoFar();
    const controller = new AbortController();
    setMaxListeners(64, controller.signal); // one listener per request
    let answered = 0;
    const load = Array.from({ length: 30 }, async () => {
      try {
        const res = await pool.request({
          path: "/load?cpuMs=100",
          method: "GET",
          headers: loadHeaders,
          signal: controller.signal,
        });
        await res.body.dump();
        answered++;
      } catch {
        // aborted below
      }
    });
    await waitFor("the first load answer", () => (answered > 0 ? true : undefined), 60_000);
    // Every client still waiting gives up, as the drill's client does after its timeout.
    controller.abort();
    await Promise.all(load);
    const skipped = await waitFor(
      "skipped requests counted",
      async () => {
        const n = (await skippedSoFar()) - before;
        return n > 0 ? n : undefined;
      },
      60_000,
    );
    assert.ok(answered + skipped <= 30, `${answered} answered, ${skipped} skipped`);
    // The instance still serves: nothing was left half done.
    const res = await pool.request({ path: "/load?cpuMs=1", method: "GET", headers: loadHeaders });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
  });
});
