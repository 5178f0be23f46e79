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
 * Issue 13 item 4: overload must not turn into a death spiral. The cpu-spike drill, at its own
 * load, while two CPU-bound processes run beside the stack on the same machine: no request fails,
 * nothing is replaced for slowness, the group scales out and back in, and the busy region is not
 * failed over (item 2). Both topologies that scale, in one file: the load-balanced stack and the
 * ecs one (seed 004) start side by side before the burners, which then run once for both drills,
 * one drill after the other (each stack idle while the other's drill runs). Stacks as a user runs
 * them (`stayup up`), drills from the CLI: their client is not in the stack's process.
 */
describe("cpu-spike with two CPU-bound processes beside the stack", { timeout: 600_000 }, () => {
  const balanced = path.join(tempDir(), ".stayup");
  const ecsDir = tempDir("stayup-ecs-spike-");
  const ecs = path.join(ecsDir, ".stayup");
  const burners: ChildProcess[] = [];

  before(async () => {
    await Promise.all([
      upDetached(balanced, { cwd: path.dirname(balanced) }),
      upDetached(ecs, { cwd: ecsDir, args: ["--topology", "ecs"], timeoutMs: 180_000 }),
    ]);
    // What `status --json` prints, without a CLI process per look (it looks every 50 ms).
    await waitFor(
      "instances healthy",
      async () => {
        const s = await StackClient.require(balanced).status();
        return s.instances.filter((i) => i.healthy).length >= 2 ? true : undefined;
      },
      120_000,
    );
    await waitFor(
      "tasks healthy",
      async () => {
        const s = await StackClient.require(ecs).status();
        return s.ecs && s.ecs.service.healthy >= s.ecs.service.desired ? true : undefined;
      },
      120_000,
    );
    burners.push(...startCpuBurners(2));
  });
  after(async () => {
    for (const b of burners) b.kill("SIGKILL");
    await Promise.all([runCli(["down", "--state-dir", balanced]), runCli(["down", "--state-dir", ecs])]);
  });

  /** The drill on one stack, with the CPU-bound processes running throughout: its report. */
  const drill = async (stateDir: string, t: Parameters<typeof cpuSpikeReport>[1]) => {
    const run = await runCli(
      ["drill", "cpu-spike", "--json", ...shortSteadyPhases, "--config", configPath, "--state-dir", stateDir],
      { timeoutMs: 400_000 },
    );
    assert.ok(
      burners.every((b) => b.exitCode === null),
      "the CPU-bound processes ran throughout",
    );
    return cpuSpikeReport(run.stdout, t);
  };

  it("load-balanced: 0 failed requests, no instance replaced for slowness, scale-out, the count never goes back, no DNS failover", async (t) => {
    const report = await drill(balanced, t);
    const during = report.events;
    const replaced = during.filter((e) => e.type === "instance.replaced");
    const terminated = during.filter((e) => e.type === "instance.terminating" && e.reason !== "scale in");
    assert.deepEqual(replaced, [], "no replacement");
    assert.deepEqual(terminated, [], "nothing terminated but by scale-in");
    assert.equal(
      report.failed,
      0,
      `failed ${report.failed} of ${report.requests}: ${JSON.stringify(report.failures)}, windows ${JSON.stringify(report.loadFailureWindows)}`,
    );
    assert.equal(report.counterContinuous, true);
    assert.ok(report.peakDesired > report.startDesired, "the group scaled out");
    // Moved from local-stack.test.ts: the new instance went into rotation, and the group came back.
    assert.equal(typeof report.recoverySeconds, "number", "the new instance went into rotation");
    assert.equal(typeof report.scaleInSeconds, "number", "the group scaled back in");
    assert.ok((report.load as { requests: number }).requests > 0, "CPU load was sent");
    const after = JSON.parse((await runCli(["status", "--json", "--state-dir", balanced])).stdout) as {
      group: { desired: number };
    };
    assert.equal(after.group.desired, report.startDesired, "back to the desired capacity it started from");
    // Item 2: a region that is only busy stays the DNS answer.
    const dnsChanges = during.filter((e) => e.type === "dns.health-changed" || e.type === "failover.action");
    assert.deepEqual(dnsChanges, [], "no DNS failover while the primary is only busy");
  });

  // Tasks slowed by the overload may fail health checks; none is replaced for it (before, the
  // service stopped them and every replacement cost more CPU), and service auto scaling adds tasks.
  it("ecs: 0 failed requests, no task replaced or stopped but by scale-in, the service scales out, the count never goes back", async (t) => {
    const report = await drill(ecs, t);
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
