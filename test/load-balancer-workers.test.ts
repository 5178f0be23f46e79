import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
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
