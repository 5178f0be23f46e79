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
 * load, while two CPU-bound processes run beside the stack on the same machine.
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

  // Issue 13 also asks for 0 failed requests here. That is not reached yet: the drill's CPU-heavy
  // requests queue on the first two instances for the ~6 s a scale-out takes under this load, and
  // some pass the client's 5 s timeout (figures in docs/benchmarks.md). This test holds what is
  // reached: overload does not turn into a replacement spiral, and no count is lost.
  it("no instance replaced for slowness, the group scales out, and the count never goes back", async () => {
    const since = events.length;
    const report = await cpuSpike.run({ client: session.client, stack, rate: 200, options: {} });
    assert.ok(
      burners.every((b) => b.exitCode === null),
      "the CPU-bound processes ran throughout",
    );
    const during = events.slice(since);
    const replaced = during.filter((e) => e.type === "instance.replaced");
    const terminated = during.filter((e) => e.type === "instance.terminating" && e.reason !== "scale in");
    assert.deepEqual(replaced, [], "no replacement");
    assert.deepEqual(terminated, [], "nothing terminated but by scale-in");
    assert.equal(report.counterContinuous, true);
    assert.ok((report.peakDesired as number) > (report.startDesired as number), "the group scaled out");
  });
});
