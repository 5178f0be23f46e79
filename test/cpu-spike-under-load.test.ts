import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { StackClient } from "../src/local/control-plane/client.ts";
import { findFreePort } from "../src/shared/net.ts";
import { configPath, cpuSpikeReport, runCli, tempDir, waitFor, startCpuBurners } from "./helpers.ts";

/**
 * Half a second of steady traffic before the load and after the scale-in (1.5 s each by default):
 * the verdict is about the load's window, and this suite runs alone, on the suite's critical path.
 */
const shortSteadyPhases = ["--warmup-seconds", "0.5", "--cooldown-seconds", "0.5"];

/**
 * Issue 13 item 4: overload must not turn into a death spiral. The cpu-spike drill, at its own
 * load, while two CPU-bound processes run beside the stack on the same machine: no request fails,
 * nothing is replaced for slowness, and the busy region is not failed over (item 2). The stack runs
 * as a user runs it (`stayup up`), the drill from the CLI: its client is not in the stack's process.
 */
describe("cpu-spike with two CPU-bound processes beside the stack", { timeout: 600_000 }, () => {
  const dir = tempDir();
  const stateDir = path.join(dir, ".stayup");
  const common = () => ["--config", configPath, "--state-dir", stateDir];
  const burners: ChildProcess[] = [];

  before(async () => {
    const ports = await Promise.all([findFreePort(), findFreePort(), findFreePort()]);
    const [port, redisPort, dnsPort] = ports.map(String) as [string, string, string];
    const up = await runCli(
      ["up", "--detach", "--port", port, "--redis-port", redisPort, "--dns-port", dnsPort, ...common()],
      { cwd: dir },
    );
    assert.equal(up.code, 0, up.stderr + up.stdout);
    await waitFor(
      "instances healthy",
      async () => {
        // What `status --json` prints, without a CLI process per look (it looks every 50 ms).
        const s = await StackClient.require(stateDir).status();
        return s.instances.filter((i) => i.healthy).length >= 2 ? true : undefined;
      },
      120_000,
    );
    burners.push(...startCpuBurners(2));
  });
  after(async () => {
    for (const b of burners) b.kill("SIGKILL");
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("0 failed requests, no instance replaced for slowness, scale-out, the count never goes back, no DNS failover", async (t) => {
    const drill = await runCli(["drill", "cpu-spike", "--json", ...shortSteadyPhases, ...common()], {
      timeoutMs: 400_000,
    });
    assert.ok(
      burners.every((b) => b.exitCode === null),
      "the CPU-bound processes ran throughout",
    );
    const report = cpuSpikeReport(drill.stdout, t);
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
    const after = JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as {
      group: { desired: number };
    };
    assert.equal(after.group.desired, report.startDesired, "back to the desired capacity it started from");
    // Item 2: a region that is only busy stays the DNS answer.
    const dnsChanges = during.filter((e) => e.type === "dns.health-changed" || e.type === "failover.action");
    assert.deepEqual(dnsChanges, [], "no DNS failover while the primary is only busy");
  });
});
