import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { StackSession } from "../src/cli/stack-session.ts";
import { failingInstance } from "../src/drills/failing-instance.ts";
import { killInstance } from "../src/drills/kill-instance.ts";
import { slowInstance } from "../src/drills/slow-instance.ts";
import { loadStack, type ResolvedStack } from "../src/stack/index.ts";
import { configPath, isAlive, waitFor } from "./helpers.ts";

/**
 * The load balancer as 2 processes sharing the listener: target health stays in the runtime,
 * ejections are shared, and the drills see the same failover behaviour as with one process.
 */
describe("load balancer as several worker processes", { timeout: 600_000 }, () => {
  let session: StackSession;
  let stack: ResolvedStack;
  let workerPids: number[] = [];

  before(async () => {
    stack = await loadStack(configPath, "dev");
    stack.loadBalancer.local.workers = 2;
    session = await StackSession.temporary(stack);
    await waitFor(
      "instances healthy",
      async () =>
        (await session.client.status()).instances.filter((i) => i.healthy).length >= 2 ? true : undefined,
      60_000,
    );
    const { default: cluster } = await import("node:cluster");
    workerPids = Object.values(cluster.workers ?? {}).flatMap((w) => (w?.process.pid ? [w.process.pid] : []));
  });
  after(async () => {
    await session?.stop().catch(() => undefined); // already stopped by the last test
  });

  it("runs 2 balancer processes per region", async () => {
    const { regions } = await session.client.status();
    assert.equal(workerPids.length, 2 * regions.length);
    for (const pid of workerPids) assert.ok(isAlive(pid));
  });

  it("the dashboard's traffic meter counts every client request the workers answered, and not the failover's probes", async () => {
    const meter = session.control.dashboard.meter;
    const counted = () => {
      const samples = meter.history();
      return {
        ok: samples.reduce((n, s) => n + s.ok, 0),
        failed: samples.reduce((n, s) => n + s.failed, 0),
        instances: new Set(samples.flatMap((s) => Object.keys(s.byInstance))),
      };
    };
    const before = counted();
    const sent = 40;
    const { listener } = await session.client.status();
    for (let i = 0; i < sent; i++) {
      // A new connection each: the kernel spreads them over the workers accepting on the socket.
      const res = await request(`${listener}/`, { reset: true });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    // The workers send their answers in batches; the meter closes a second a second later.
    await waitFor(
      "the requests counted",
      () => (counted().ok >= before.ok + sent ? true : undefined),
      15_000,
    );
    const after = counted();
    assert.equal(after.ok - before.ok, sent, "each request once");
    assert.equal(after.failed, before.failed);
    for (const id of after.instances) assert.match(id, /^i-[0-9a-f]+$/);
  });

  it("kill-instance: 0 failed, a replacement in rotation (refused connections reach the shared target group)", async () => {
    const report = await killInstance.run({
      client: session.client,
      stack,
      rate: 200,
      options: { signal: "KILL" },
    });
    assert.equal(report.failed, 0, JSON.stringify(report.failures));
    assert.notEqual(report.recoverySeconds, null);
    assert.equal(report.counterContinuous, true);
  });

  it("failing-instance: at most 1 % failed, ejected once for all workers, back after the clear", async () => {
    const report = await failingInstance.run({
      client: session.client,
      stack,
      rate: 200,
      options: { faultSeconds: 5, status: "500" },
    });
    assert.ok(
      report.failed <= 0.01 * report.requests,
      `failed ${report.failed} of ${report.requests}: ${JSON.stringify({ ...report, servedBy: undefined })}`,
    );
    assert.notEqual(report.ejectedAfterSeconds, null);
    assert.notEqual(report.returnedAfterSeconds, null);
    assert.deepEqual(report.replacedInstances, []);
  });

  it("slow-instance: at most 1 % failed, ejected and back, nothing replaced", async () => {
    const report = await slowInstance.run({
      client: session.client,
      stack,
      rate: 200,
      options: { faultSeconds: 5, latencyMs: 2000, stall: false },
    });
    assert.ok(report.failed <= 0.01 * report.requests, `failed ${report.failed} of ${report.requests}`);
    assert.notEqual(report.ejectedAfterSeconds, null);
    assert.deepEqual(report.replacedInstances, []);
  });

  it("stopping the stack stops the worker processes", async () => {
    await session.stop();
    await waitFor(
      "workers gone",
      () => (workerPids.every((pid) => !isAlive(pid)) ? true : undefined),
      15_000,
    );
  });
});
