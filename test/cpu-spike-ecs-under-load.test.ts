import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { DrillReport } from "../src/drills/report.ts";
import type { TimedStackEvent } from "../src/local/events/bus.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { configPath, runCli, tempDir, upDetached, waitFor } from "./helpers.ts";

/**
 * Issue 13 item 4 on the ecs topology (seed 004): the cpu-spike drill, at its own load, while two
 * CPU-bound processes run beside the stack. Tasks slowed by the overload may fail health checks;
 * none is replaced for it (before, the service stopped them and every replacement cost more CPU),
 * no request fails, and service auto scaling adds tasks. Stack and drill through the CLI.
 */
describe("cpu-spike on ecs with two CPU-bound processes beside the stack", { timeout: 600_000 }, () => {
  const dir = tempDir("stayup-ecs-spike-");
  const stateDir = path.join(dir, ".stayup");
  const burners: ChildProcess[] = [];

  before(async () => {
    await upDetached(stateDir, { cwd: dir, args: ["--topology", "ecs"], timeoutMs: 180_000 });
    await waitFor(
      "tasks healthy",
      async () => {
        const s = JSON.parse(
          (await runCli(["status", "--json", "--state-dir", stateDir])).stdout,
        ) as StackStatus;
        return s.ecs && s.ecs.service.healthy >= s.ecs.service.desired ? true : undefined;
      },
      120_000,
    );
    for (let i = 0; i < 2; i++) {
      burners.push(spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
    }
  });
  after(async () => {
    for (const b of burners) b.kill("SIGKILL");
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("0 failed requests, no task replaced or stopped but by scale-in, the service scales out, the count never goes back", async (t) => {
    const drill = await runCli(
      ["drill", "cpu-spike", "--json", "--config", configPath, "--state-dir", stateDir],
      {
        timeoutMs: 400_000,
      },
    );
    assert.ok(
      burners.every((b) => b.exitCode === null),
      "the CPU-bound processes ran throughout",
    );
    const report = JSON.parse(drill.stdout) as DrillReport & {
      events: TimedStackEvent[];
      startDesired: number;
      peakDesired: number;
      loadFailureWindows: unknown;
    };
    const during = report.events;
    // The figures docs/benchmarks.md records, and what happened.
    const { timeline: _timeline, events: _events, ...figures } = report as unknown as Record<string, unknown>;
    t.diagnostic(JSON.stringify(figures));
    const t0 = Date.parse(during[0]?.time ?? new Date().toISOString());
    for (const e of during) {
      const { time, seq: _seq, type, ...rest } = e as TimedStackEvent & Record<string, unknown>;
      t.diagnostic(`+${((Date.parse(time) - t0) / 1000).toFixed(2)} s ${type} ${JSON.stringify(rest)}`);
    }
    const replacements = during.filter((e) => e.type === "task.placed" && e.replaces !== undefined);
    assert.deepEqual(replacements, [], "no task started to replace another");
    const stoppedOtherwise = during.filter(
      (e) => e.type === "task.stopped" && (!e.expected || e.reason !== "above the desired count"),
    );
    assert.deepEqual(stoppedOtherwise, [], "no task stopped but by scale-in");
    assert.equal(
      report.failed,
      0,
      `failed ${report.failed} of ${report.requests}: ${JSON.stringify(report.failures)}, windows ${JSON.stringify(report.loadFailureWindows)}`,
    );
    assert.equal(report.counterContinuous, true);
    assert.ok(report.peakDesired > report.startDesired, "service auto scaling added tasks");
    assert.ok(
      during.some((e) => e.type === "service.desired-count-changed" && e.desired > report.startDesired),
      "the service's desired count rose",
    );
  });
});
