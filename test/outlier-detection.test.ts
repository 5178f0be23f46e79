import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { request } from "undici";
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";
import { LoadBalancer, type TrafficPolicy } from "../src/local/load-balancer/balancer.ts";
import { maxEjected, OutlierDetector } from "../src/local/load-balancer/outlier-detection.ts";
import { TargetGroupController } from "../src/local/target-group/controller.ts";
import { StackValidationError, validateStack } from "../src/stack/index.ts";
import { waitFor } from "./helpers.ts";

const settings = {
  consecutiveFailures: 3,
  baseEjectionMs: 1000,
  maxEjectionMs: 4000,
  maxEjectionPercent: 50,
};

describe("outlier detection and retry settings in the description", () => {
  it("reports bad settings with their field paths, before anything starts", async () => {
    const input = structuredClone((await import("../stayup.config.ts")).default);
    input.loadBalancer.outlierDetection.maxEjectionPercent = 150;
    input.loadBalancer.outlierDetection.maxEjectionMs = 4_000_000;
    input.loadBalancer.retries.perTryTimeoutMs = 0;
    input.loadBalancer.local.workers = 0;
    let error: StackValidationError | undefined;
    try {
      validateStack(input, "stayup.config.ts");
    } catch (e) {
      error = e as StackValidationError;
    }
    assert.ok(error instanceof StackValidationError);
    const byPath = new Map(error.problems.map((p) => [p.path, p.message]));
    assert.match(byPath.get("loadBalancer.outlierDetection.maxEjectionPercent") ?? "", /0 to 100 %/);
    assert.match(byPath.get("loadBalancer.outlierDetection.maxEjectionMs") ?? "", /100 to 3600000 ms/);
    assert.match(byPath.get("loadBalancer.retries.perTryTimeoutMs") ?? "", /10 to 60000 ms/);
    assert.match(byPath.get("loadBalancer.local.workers") ?? "", /1 to 16/);
  });
});

describe("outlier detector (decisions)", () => {
  it("ejects after consecutive 5xx, for longer on each repeat, up to the maximum", () => {
    const d = new OutlierDetector(settings, 1000);
    const rotation = ["a", "b", "c"];
    assert.equal(d.observe("a", "5xx", 0, rotation), undefined);
    assert.equal(d.observe("a", "5xx", 1, rotation), undefined);
    assert.equal(d.observe("a", "5xx", 2, rotation)?.forMs, 1000);
    assert.equal(d.isEjected("a", 500), true);
    assert.deepEqual(d.returned(1002), ["a"]);
    for (const t of [1003, 1004]) d.observe("a", "5xx", t, rotation);
    assert.equal(
      d.observe("a", "5xx", 1005, rotation)?.forMs,
      2000,
      "second ejection in a row: twice as long",
    );
    d.returned(3005);
    for (const t of [3006, 3007]) d.observe("a", "5xx", t, rotation);
    assert.equal(d.observe("a", "5xx", 3008, rotation)?.forMs, 3000);
  });

  it("a success resets the streak", () => {
    const d = new OutlierDetector(settings, 1000);
    d.observe("a", "5xx", 0, ["a", "b"]);
    d.observe("a", "5xx", 1, ["a", "b"]);
    d.observe("a", "success", 2, ["a", "b"]);
    assert.equal(d.observe("a", "5xx", 3, ["a", "b"]), undefined);
  });

  it("never ejects more than the max share of the group, and never the last target", () => {
    assert.equal(maxEjected(1, 100), 0);
    assert.equal(maxEjected(2, 50), 1);
    assert.equal(maxEjected(3, 50), 1);
    assert.equal(maxEjected(4, 100), 3);
    assert.equal(maxEjected(4, 0), 0);
    const d = new OutlierDetector(settings, 1000);
    const rotation = ["a", "b"];
    for (let t = 0; t < 3; t++) d.observe("a", "5xx", t, rotation);
    for (let t = 0; t < 10; t++) assert.equal(d.observe("b", "5xx", t, rotation), undefined);
    assert.equal(d.isEjected("a", 5), true);
    assert.equal(d.isEjected("b", 5), false);
  });

  it("timeouts eject a target only while another target answers in time (no ejection under a group-wide overload)", () => {
    const d = new OutlierDetector(settings, 1000);
    const rotation = ["a", "b"];
    // Both time out: the whole group is slow.
    for (let t = 0; t < 5; t++) {
      d.observe("b", "timeout", 100 * t, rotation);
      assert.equal(d.observe("a", "timeout", 100 * t + 1, rotation), undefined);
    }
    // b answers in time from now on; a keeps timing out: once b's last timeout is a window old, a goes.
    d.observe("b", "success", 500, rotation);
    assert.equal(d.observe("a", "timeout", 900, rotation), undefined);
    d.observe("b", "success", 1400, rotation);
    assert.match(d.observe("a", "timeout", 1500, rotation)?.reason ?? "", /timeouts/);
  });

  it("a peer with an occasional slow answer among many in time still counts as fast (a stalled target goes)", () => {
    const d = new OutlierDetector(settings, 1000);
    const rotation = ["a", "b"];
    // b: one timeout among 20 answers in the last second (a busy machine), then in time again.
    for (let t = 0; t < 20; t++) d.observe("b", t === 10 ? "timeout" : "success", 1000 + 40 * t, rotation);
    for (let t = 0; t < 2; t++) assert.equal(d.observe("a", "timeout", 1800 + 50 * t, rotation), undefined);
    assert.match(d.observe("a", "timeout", 1900, rotation)?.reason ?? "", /timeouts/);
  });

  it("a peer with many slow answers is no fast peer (the whole group is slow)", () => {
    const d = new OutlierDetector(settings, 1000);
    const rotation = ["a", "b"];
    for (let t = 0; t < 20; t++) d.observe("b", t % 4 === 0 ? "timeout" : "success", 1000 + 40 * t, rotation);
    for (let t = 0; t < 10; t++) assert.equal(d.observe("a", "timeout", 1800 + 20 * t, rotation), undefined);
  });

  it("beside peers that answer in time but slowly (the group near the per-try timeout), a brief timeout streak is the group's tail: no ejection", () => {
    // Window 1000 ms, answers of 100 ms or less count as quick (a quarter of a 400 ms per-try timeout).
    const d = new OutlierDetector(settings, 1000, 100);
    const rotation = ["a", "b"];
    // Both answer in time, slowly (a slow Redis): 250 ms each.
    for (let t = 0; t < 20; t++) {
      d.observe("a", "success", 1000 + 40 * t, rotation, 250);
      d.observe("b", "success", 1000 + 40 * t, rotation, 250);
    }
    // a's process is held up for a moment (a busy machine): a streak of timeouts, b still in time.
    for (let t = 0; t < 10; t++) {
      d.observe("b", "success", 1800 + 20 * t, rotation, 260);
      assert.equal(d.observe("a", "timeout", 1800 + 20 * t, rotation), undefined);
    }
    // Answering in time again ends it; the same streak beside quick answers would have ejected a.
    d.observe("a", "success", 2000, rotation, 300);
    const quick = new OutlierDetector(settings, 1000, 100);
    for (let t = 0; t < 20; t++) quick.observe("b", "success", 1000 + 40 * t, rotation, 5);
    quick.observe("a", "success", 1700, rotation, 5);
    for (let t = 0; t < 2; t++)
      assert.equal(quick.observe("a", "timeout", 1800 + 20 * t, rotation), undefined);
    assert.match(quick.observe("a", "timeout", 1840, rotation)?.reason ?? "", /timeouts/);
  });

  it("beside slowly answering peers, a target that answers nothing in time for two windows is ejected", () => {
    const d = new OutlierDetector(settings, 1000, 100);
    const rotation = ["a", "b"];
    d.observe("a", "success", 0, rotation, 250);
    // a stalls from now on; b keeps answering in time, slowly.
    for (let t = 1; t <= 39; t++) {
      d.observe("b", "success", 50 * t, rotation, 250);
      assert.equal(d.observe("a", "timeout", 50 * t, rotation), undefined, `at ${50 * t} ms`);
    }
    d.observe("b", "success", 2000, rotation, 250);
    assert.match(d.observe("a", "timeout", 2000, rotation)?.reason ?? "", /no answer in time for 2\.0 s/);
  });

  it("a target back from an ejection is no fast peer until it answers in time (no ejection ping-pong under overload)", () => {
    const d = new OutlierDetector(settings, 1000);
    const rotation = ["a", "b"];
    // a answered in time, b timed out: b is ejected for the base period.
    d.observe("a", "success", 0, rotation);
    for (let t = 1; t <= 5; t++) d.observe("b", "timeout", t, rotation);
    assert.ok(d.isEjected("b", 10));
    // Meanwhile a takes the whole load and times out too; b comes back having answered nothing.
    for (let t = 1; t <= 9; t++) assert.equal(d.observe("a", "timeout", 100 * t, rotation), undefined);
    assert.deepEqual(d.returned(1010), ["b"]);
    // b has had no timeout for over the window, but only because it had no traffic: a stays.
    assert.equal(d.observe("a", "timeout", 1020, rotation), undefined);
    // Once b answers in time (and a still does not), a is the outlier.
    d.observe("b", "success", 1030, rotation);
    assert.match(d.observe("a", "timeout", 1500, rotation)?.reason ?? "", /timeouts/);
  });
});

/** A real HTTP target on loopback whose `/health` always passes and whose pages follow `mode`. */
async function target(name: string) {
  const state = { mode: "ok" as "ok" | "errors" | "stall", pages: 0, pageTimesMs: [] as number[] };
  const stalled = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    if (req.url === "/health") return res.end("ok");
    state.pages++;
    state.pageTimesMs.push(Date.now());
    if (state.mode === "errors") {
      res.writeHead(500, { "content-type": "text/plain" });
      return res.end(`${name} failed`);
    }
    if (state.mode === "stall") return void stalled.add(res);
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    name,
    state,
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const res of stalled) res.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}

const healthCheck = {
  path: "/health",
  intervalMs: 100,
  timeoutMs: 1000,
  healthyThreshold: 1,
  unhealthyThreshold: 2,
};
const policy: TrafficPolicy = {
  outlierDetection: {
    consecutiveFailures: 3,
    baseEjectionMs: 1500,
    maxEjectionMs: 10_000,
    maxEjectionPercent: 50,
  },
  retries: { maxAttempts: 3, perTryTimeoutMs: 300, budgetPercent: 20, minRetryConcurrency: 3 },
};

/** An event's time is taken just after the decision it reports: a few ms late on a busy machine. */
const slackMs = 50;

describe("load balancer with outlier detection and retries (real sockets)", () => {
  const cleanup: (() => unknown)[] = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  async function setup(names: string[], p: TrafficPolicy = policy) {
    const targets = await Promise.all(names.map((n) => target(n)));
    const events = new EventBus();
    const seen: TimedStackEvent[] = [];
    events.subscribe((e) => seen.push(e));
    const tg = new TargetGroupController(healthCheck, events);
    const lb = new LoadBalancer(tg, events, { host: "127.0.0.1", port: 0 }, p);
    const url = await lb.listen();
    cleanup.push(
      () => lb.close(),
      () => tg.stop(),
      ...targets.map((t) => t.close),
    );
    for (const t of targets)
      tg.register({ instanceId: t.name, az: "eu-west-3a", host: "127.0.0.1", port: t.port });
    await waitFor("targets healthy", () => tg.inRotation().length === targets.length || undefined, 10_000);
    const get = async (path = "/") => {
      const res = await request(`${url}${path}`);
      return { status: res.statusCode, body: await res.body.text() };
    };
    return { targets, tg, url, seen, get };
  }

  it("a target whose /health passes but whose pages fail is ejected without a failed GET, and comes back once it recovers", async () => {
    const { targets, tg, seen, get } = await setup(["a", "b"]);
    const [a] = targets;
    assert.ok(a);
    a.state.mode = "errors";
    for (let i = 0; i < 20; i++) assert.equal((await get()).status, 200, "every GET is retried on b");
    const ejected = seen.find((e) => e.type === "target.ejected");
    assert.equal(ejected?.type === "target.ejected" && ejected.instanceId, "a");
    assert.equal(tg.get("a")?.health, "healthy", "its health checks still pass: ejected, not unhealthy");
    for (let i = 0; i < 10; i++) assert.equal((await get()).body, "b");
    // Judged within the ejection's own window: on a slow machine the 10 GETs outlast it, and a
    // (still failing) gets requests again once it has returned.
    assert.ok(ejected?.type === "target.ejected");
    const ejectedAtMs = Date.parse(ejected.time);
    assert.deepEqual(
      a.state.pageTimesMs.filter((t) => t > ejectedAtMs && t < ejectedAtMs + ejected.forMs - slackMs),
      [],
      "no request reached the ejected target",
    );
    a.state.mode = "ok";
    await waitFor("a returned", () => seen.find((e) => e.type === "target.returned") ?? undefined, 10_000);
    // The balancer's workers learn of the return by message: on a slow machine the next few GETs
    // may still go to b alone. Back in rotation = a answers a GET again, and every GET is answered.
    const bodies = new Set<string>();
    await waitFor(
      "a back in rotation",
      async () => {
        const res = await get();
        assert.equal(res.status, 200);
        bodies.add(res.body);
        return bodies.has("a") || undefined;
      },
      10_000,
    );
    assert.deepEqual([...bodies].sort(), ["a", "b"], "back in rotation");
  });

  it("with every target failing, it never ejects them all and passes the targets' own answers on", async () => {
    const { targets, get, seen } = await setup(["a", "b", "c"]);
    for (const t of targets) t.state.mode = "errors";
    const statuses = new Set<number>();
    for (let i = 0; i < 40; i++) statuses.add((await get()).status);
    assert.deepEqual([...statuses], [500]);
    // At most one out at a time: an ejection ends after baseEjectionMs, and on a slow machine the
    // 40 requests outlast it, so another target may be ejected later, never beside the first.
    // Each ejection's window from its event (the return's event is a timer, late on a busy machine).
    const windows = seen.flatMap((e) =>
      e.type === "target.ejected"
        ? [{ from: Date.parse(e.time), to: Date.parse(e.time) + e.forMs - slackMs }]
        : [],
    );
    assert.ok(windows.length >= 1, "one was ejected");
    const overlapping = windows.filter((w, i) =>
      windows.some((o, j) => j !== i && o.from < w.to && w.from < o.to),
    );
    assert.deepEqual(overlapping, [], "50 % of 3 targets: one ejected at most, at any time");
    const pagesAfter = targets.map((t) => t.state.pages);
    await get();
    await get();
    assert.ok(
      targets.filter((t, i) => t.state.pages > (pagesAfter[i] ?? 0)).length >= 1,
      "requests still reach the group",
    );
  });

  it("a stalled GET goes to another target after the per-try timeout, and the stalling target is ejected", async () => {
    const { targets, get, seen } = await setup(["a", "b"]);
    const [a] = targets;
    assert.ok(a);
    a.state.mode = "stall";
    // Traffic until the ejection: the least-outstanding pick sends the stalling target a request
    // only when its stuck ones were retried elsewhere, so one burst may not reach it often enough.
    const answers: { body: string }[] = [];
    const deadline = Date.now() + 10_000;
    while (!seen.some((e) => e.type === "target.ejected") && Date.now() < deadline)
      answers.push(...(await Promise.all(Array.from({ length: 12 }, () => get()))));
    assert.deepEqual(new Set(answers.map((r) => r.body)), new Set(["b"]));
    await waitFor("a ejected", () => seen.find((e) => e.type === "target.ejected") ?? undefined, 1000);
    const ejected = seen.find((e) => e.type === "target.ejected");
    assert.match(ejected?.type === "target.ejected" ? ejected.reason : "", /timeouts/);
  });

  it("with no other target to try, a slow answer is waited for, not turned into a 504", async () => {
    const slow = http.createServer((req, res) => {
      if (req.url === "/health") return res.end("ok");
      setTimeout(() => res.end("slow but fine"), 900);
    });
    await new Promise<void>((r) => slow.listen(0, "127.0.0.1", () => r()));
    cleanup.push(() => slow.close());
    const events = new EventBus();
    const tg = new TargetGroupController(healthCheck, events);
    const lb = new LoadBalancer(tg, events, { host: "127.0.0.1", port: 0 }, policy);
    const url = await lb.listen();
    cleanup.push(
      () => lb.close(),
      () => tg.stop(),
    );
    tg.register({
      instanceId: "s",
      az: "eu-west-3a",
      host: "127.0.0.1",
      port: (slow.address() as AddressInfo).port,
    });
    await waitFor("healthy", () => tg.inRotation().length === 1 || undefined, 10_000);
    const res = await request(`${url}/`);
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), "slow but fine");
  });

  it("an exhausted retry budget sends the failed answer instead of retrying", async () => {
    const noBudget: TrafficPolicy = {
      outlierDetection: { ...policy.outlierDetection!, consecutiveFailures: 1000 },
      retries: { maxAttempts: 3, perTryTimeoutMs: 300, budgetPercent: 0, minRetryConcurrency: 0 },
    };
    const { targets, get } = await setup(["a", "b"], noBudget);
    const [a, b] = targets;
    assert.ok(a && b);
    a.state.mode = "errors";
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await get()).status);
    assert.equal(
      statuses.filter((s) => s === 500).length,
      5,
      "round robin: every other GET hits a, and is not retried",
    );
    assert.equal(a.state.pages + b.state.pages, 10, "no request was sent twice");
  });
});
