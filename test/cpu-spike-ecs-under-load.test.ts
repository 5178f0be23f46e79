import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { StackClient } from "../src/local/control-plane/client.ts";
import {
  configPath,
  cpuSpikeReport,
  runCli,
  tempDir,
  upDetached,
  waitFor,
  startCpuBurners,
} from "./helpers.ts";

/**
 * Half a second of steady traffic before the load and after the scale-in (1.5 s each by default):
 * the verdict is about the load's window, and this suite runs alone, on the suite's critical path.
 */
const shortSteadyPhases = ["--warmup-seconds", "0.5", "--cooldown-seconds", "0.5"];

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
        // What `status --json` prints, without a CLI process per look (it looks every 50 ms).
        const s = await StackClient.require(stateDir).status();
        return s.ecs && s.ecs.service.healthy >= s.ecs.service.desired ? true : undefined;
      },
      120_000,
    );
    burners.push(...startCpuBurners(2));
  });
  after(async () => {
    for (const b of burners) b.kill("SIGKILL");
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("0 failed requests, no task replaced or stopped but by scale-in, the service scales out, the count never goes back", async (t) => {
    const drill = await runCli(
      ["drill", "cpu-spike", "--json", ...shortSteadyPhases, "--config", configPath, "--state-dir", stateDir],
      {
        timeoutMs: 400_000,
      },
    );
    assert.ok(
      burners.every((b) => b.exitCode === null),
      "the CPU-bound processes ran throughout",
    );
    const report = cpuSpikeReport(drill.stdout, t);
    const during = report.events;
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
