import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { StackSession } from "../src/cli/stack-session.ts";
import { cpuSpike } from "../src/drills/cpu-spike.ts";
import type { TimedStackEvent } from "../src/local/events/bus.ts";
import { loadStack, type ResolvedStack } from "../src/stack/index.ts";
import { configPath, waitFor } from "./helpers.ts";

/**
 * Issue 13 item 4: overload must not turn into a death spiral. The cpu-spike drill, at its own
 * load, while two CPU-bound processes run beside the stack on the same machine: no request fails,
 * nothing is replaced for slowness, and the busy region is not failed over (item 2).
 */
describe("cpu-spike with two CPU-bound processes beside the stack", { timeout: 600_000 }, () => {
  let session: StackSession;
  let stack: ResolvedStack;
  const events: TimedStackEvent[] = [];
  const burners: ChildProcess[] = [];

  before(async () => {
    stack = await loadStack(configPath, "dev");
    session = await StackSession.temporary(stack);
    session.stack.events.subscribe((e) => events.push(e));
    await waitFor(
      "instances healthy",
      async () =>
        (await session.client.status()).instances.filter((i) => i.healthy).length >= 2 ? true : undefined,
      60_000,
    );
    for (let i = 0; i < 2; i++) {
      burners.push(spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
    }
  });
  after(async () => {
    for (const b of burners) b.kill("SIGKILL");
    await session?.stop();
  });

  it("0 failed requests, no instance replaced for slowness, scale-out, the count never goes back, no DNS failover", async (t) => {
    const since = events.length;
    const report = await cpuSpike.run({ client: session.client, stack, rate: 200, options: {} });
    assert.ok(
      burners.every((b) => b.exitCode === null),
      "the CPU-bound processes ran throughout",
    );
    const during = events.slice(since);
    // The figures docs/benchmarks.md records.
    const { timeline: _timeline, events: _events, ...figures } = report as Record<string, unknown>;
    t.diagnostic(JSON.stringify(figures));
    const t0 = Date.parse(during[0]?.time ?? new Date().toISOString());
    for (const e of during) {
      const { time, seq: _seq, type, ...rest } = e as TimedStackEvent & Record<string, unknown>;
      t.diagnostic(`+${((Date.parse(time) - t0) / 1000).toFixed(2)} s ${type} ${JSON.stringify(rest)}`);
    }
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
    assert.ok((report.peakDesired as number) > (report.startDesired as number), "the group scaled out");
    // Item 2: a region that is only busy stays the DNS answer.
    const dnsChanges = during.filter((e) => e.type === "dns.health-changed" || e.type === "failover.action");
    assert.deepEqual(dnsChanges, [], "no DNS failover while the primary is only busy");
  });
});
