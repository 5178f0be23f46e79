import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { request } from "undici";
import { EventBus } from "../src/local/events/bus.ts";
import { TrafficMeter } from "../src/local/dashboard/traffic-meter.ts";
import { LoadBalancer } from "../src/local/load-balancer/balancer.ts";
import { findFreePort } from "../src/shared/net.ts";
import { REGION_HEALTH_CHECK_PATH, REGION_HEALTH_CHECK_USER_AGENT } from "../src/stack/derived.ts";
import { TargetGroupController } from "../src/local/target-group/controller.ts";
import { waitFor } from "./helpers.ts";

/** A real HTTP target on loopback that records what reached it. */
async function target(name: string, handler?: http.RequestListener) {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    if (handler) return handler(req, res);
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, hits, port: (server.address() as AddressInfo).port };
}

const healthCheck = {
  path: "/health",
  intervalMs: 100,
  timeoutMs: 50,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
};

describe("load balancer", () => {
  const cleanup: (() => unknown)[] = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  async function setup(targets: { id: string; port: number }[]) {
    const events = new EventBus();
    const tg = new TargetGroupController(healthCheck, events);
    const lb = new LoadBalancer(tg, events, { host: "127.0.0.1", port: 0 });
    const url = await lb.listen();
    cleanup.push(
      () => lb.close(),
      () => tg.stop(),
    );
    for (const t of targets)
      tg.register({ instanceId: t.id, az: "eu-west-3a", host: "127.0.0.1", port: t.port });
    await waitFor("targets healthy", () => tg.inRotation().length === targets.length || undefined, 5000);
    return { events, tg, lb, url };
  }

  it("answers 503 when no target is healthy", async () => {
    const { url } = await setup([]);
    const res = await request(url);
    assert.equal(res.statusCode, 503);
    assert.match(await res.body.text(), /no healthy targets/);
  });

  it("round-robins over healthy targets", async () => {
    const a = await target("a");
    const b = await target("b");
    cleanup.push(
      () => a.server.close(),
      () => b.server.close(),
    );
    const { url } = await setup([
      { id: "a", port: a.port },
      { id: "b", port: b.port },
    ]);
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await (await request(`${url}/x`)).body.text());
    assert.deepEqual(seen.sort(), ["a", "a", "a", "b", "b", "b"]);
  });

  it("the dashboard's meter counts clients, not the failover's region health checks, whatever path they ask (issue 25, item 7)", async () => {
    const a = await target("a");
    cleanup.push(() => a.server.close());
    const { lb, url } = await setup([{ id: "a", port: a.port }]);
    const paths: string[] = [];
    /** Requests the meter counts, of those sent by `send`. */
    const counted = async (send: () => Promise<void>, answers: number) => {
      const meter = new TrafficMeter();
      const seenBefore = paths.length;
      lb.observer = (answer) => {
        paths.push(answer.path);
        meter.record(answer);
      };
      await send();
      await waitFor(`${answers} answers observed`, () => paths.length === seenBefore + answers || undefined);
      return meter.tick(Date.now() + 1000).reduce((n, s) => n + s.ok + s.failed, 0);
    };
    const get = async (path: string, headers: Record<string, string> = {}) =>
      (await request(`${url}${path}`, { headers })).body.dump();
    const probe = { "user-agent": REGION_HEALTH_CHECK_USER_AGENT };
    // The probe asks the region rule, or the instances' check while a failback waits for Redis.
    const probes = await counted(async () => {
      await get(REGION_HEALTH_CHECK_PATH, probe);
      await get("/health", probe);
    }, 2);
    assert.equal(probes, 0, "no probe counted, whatever its path");
    // A client asking the same paths is a client.
    const clients = await counted(async () => {
      await get("/health");
      await get(`${REGION_HEALTH_CHECK_PATH}?probe=1`);
      await get("/");
    }, 3);
    assert.equal(clients, 3, "every client request counted, whatever its path");
    assert.deepEqual(paths, [
      REGION_HEALTH_CHECK_PATH,
      "/health",
      "/health",
      `${REGION_HEALTH_CHECK_PATH}?probe=1`,
      "/",
    ]);
    lb.observer = undefined;
  });

  it("a refused connection is retried on another target and takes the dead one out at once", async () => {
    const a = await target("a");
    const b = await target("b");
    cleanup.push(() => a.server.close());
    const { url, tg } = await setup([
      { id: "a", port: a.port },
      { id: "b", port: b.port },
    ]);
    b.server.close();
    b.server.closeAllConnections();
    // Every request, including non-idempotent ones, succeeds: nothing reached the dead target.
    for (let i = 0; i < 4; i++) {
      const res = await request(`${url}/`, { method: "POST", body: "x" });
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), "a");
    }
    assert.equal(tg.get("b")?.health, "unhealthy");
    assert.deepEqual(
      tg.inRotation().map((t) => t.instanceId),
      ["a"],
    );
  });

  it("a draining target's 503 (x-stayup-draining) sends even a POST elsewhere and takes it out at once", async () => {
    // What the web service answers, unhandled, to a request on a kept-alive connection after SIGTERM.
    const draining = await target("d", (req, res) => {
      if (req.url === "/health") return res.end("ok");
      res.writeHead(503, {
        "x-stayup-draining": "1",
        connection: "close",
        "content-type": "application/json",
      });
      res.end('{"error":"service unavailable"}');
    });
    const ok = await target("ok");
    cleanup.push(
      () => draining.server.close(),
      () => ok.server.close(),
    );
    const { url, events } = await setup([
      { id: "d", port: draining.port },
      { id: "ok", port: ok.port },
    ]);
    const takenOut: string[] = [];
    events.subscribe((e) => {
      if (e.type === "target.unhealthy" && e.instanceId === "d") takenOut.push(e.reason);
    });
    for (let i = 0; i < 4; i++) {
      const res = await request(`${url}/`, { method: "POST", body: "x" });
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), "ok");
    }
    // Judged by the event, not the target's state now: its /health still passes, so on a slow
    // machine its health checks may have put it back (healthy threshold 2 × 100 ms) before the
    // fourth POST is answered.
    assert.ok(takenOut.length >= 1, "d was taken out");
    assert.match(takenOut[0] ?? "", /draining/);
  });

  it("a connection reset after the request was sent: GET is retried, POST gets 502 and is not repeated", async () => {
    const resetting = await target("r", (req, res) => {
      if (req.url === "/health") return res.end("ok");
      req.socket.destroy(); // crashes mid-request: the request did reach it
    });
    const ok = await target("ok");
    cleanup.push(
      () => resetting.server.close(),
      () => ok.server.close(),
    );
    const { url } = await setup([
      { id: "r", port: resetting.port },
      { id: "ok", port: ok.port },
    ]);
    for (let i = 0; i < 4; i++) {
      const res = await request(`${url}/get`);
      assert.equal(res.statusCode, 200, "GET is idempotent and retried elsewhere");
      await res.body.dump();
    }
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(`${url}/post`, { method: "POST", body: "order=1" });
      statuses.push(res.statusCode);
      await res.body.dump();
    }
    assert.ok(statuses.includes(502), "a POST that reached the resetting target is not retried");
    const postsToReset = resetting.hits.filter((h) => h === "POST /post").length;
    const postsToOk = ok.hits.filter((h) => h === "POST /post").length;
    assert.equal(postsToReset + postsToOk, 4, "each POST reached exactly one target");
  });

  it("forwards headers and body minus hop-by-hop headers, sets X-Forwarded-*, and passes the answer's headers back", async () => {
    let seen: { headers: http.IncomingHttpHeaders; raw: string[]; body: string } | undefined;
    const echo = await target("echo", (req, res) => {
      if (req.url === "/health") return res.end("ok");
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen = { headers: req.headers, raw: req.rawHeaders, body: Buffer.concat(chunks).toString() };
        res.setHeader("set-cookie", ["a=1", "b=2"]);
        res.setHeader("x-answer", "yes");
        res.setHeader("keep-alive", "timeout=5");
        res.end("done");
      });
    });
    cleanup.push(() => echo.server.close());
    const { url } = await setup([{ id: "echo", port: echo.port }]);
    const port = new URL(url).port;
    const res = await request(`${url}/form?x=1`, {
      method: "POST",
      body: "order=1",
      headers: {
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-custom": "kept",
        "proxy-connection": "keep-alive",
        te: "trailers",
      },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), "done");
    assert.deepEqual(res.headers["set-cookie"], ["a=1", "b=2"], "both cookies reach the client");
    assert.equal(res.headers["x-answer"], "yes");
    assert.notEqual(
      res.headers["keep-alive"],
      "timeout=5",
      "the target's hop-by-hop header stays on its hop",
    );
    assert.ok(seen, "the request reached the target");
    assert.equal(seen.body, "order=1");
    assert.equal(seen.headers["x-custom"], "kept");
    assert.equal(seen.headers["proxy-connection"], undefined);
    assert.equal(seen.headers.te, undefined);
    assert.equal(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1", "the client is appended");
    assert.equal(
      seen.headers["x-forwarded-proto"],
      "http",
      "the listener's protocol, not the client's claim",
    );
    assert.equal(seen.headers["x-forwarded-port"], port);
    // As an ALB: Host as the client sent it, and no X-Forwarded-Host of the balancer's making.
    assert.equal(seen.headers.host, `127.0.0.1:${port}`);
    assert.equal(seen.headers["x-forwarded-host"], undefined);
    assert.equal(seen.raw.filter((h) => h.toLowerCase() === "x-forwarded-proto").length, 1);
  });

  it("streams an answer too large to buffer, whole", async () => {
    const big = Buffer.alloc(1024 * 1024, "x");
    const large = await target("large", (req, res) => {
      if (req.url === "/health") return res.end("ok");
      res.writeHead(200, { "content-type": "application/octet-stream" }); // unsized: chunked
      res.write(big.subarray(0, big.length / 2));
      setTimeout(() => res.end(big.subarray(big.length / 2)), 20);
    });
    cleanup.push(() => large.server.close());
    const { url } = await setup([{ id: "large", port: large.port }]);
    const res = await request(`${url}/download`);
    assert.equal(res.statusCode, 200);
    const body = Buffer.from(await res.body.arrayBuffer());
    assert.equal(body.length, big.length);
    assert.ok(body.equals(big));
  });

  it("refuses to start on a port in use, with the fix", async () => {
    const port = await findFreePort();
    const holder = http.createServer();
    await new Promise<void>((r) => holder.listen(port, "127.0.0.1", () => r()));
    cleanup.push(() => holder.close());
    const events = new EventBus();
    const lb = new LoadBalancer(new TargetGroupController(healthCheck, events), events, {
      host: "127.0.0.1",
      port,
    });
    await assert.rejects(lb.listen(), /port is already in use.*/);
  });
});
