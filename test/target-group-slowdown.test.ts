import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";
import { TargetGroupController } from "../src/local/target-group/controller.ts";
import { waitFor } from "./helpers.ts";

/** A real target on loopback whose /health answers after `state.delayMs` (undici times out coarsely: use seconds). */
async function target() {
  const state = { delayMs: 0 };
  const server = http.createServer((_req, res) => {
    setTimeout(() => res.end("ok"), state.delayMs);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, state, port: (server.address() as AddressInfo).port };
}

describe("target group: group-wide slowdown", () => {
  const cleanup: (() => unknown)[] = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  it("every target's checks timing out is a slowdown: they stay routable; one prompt again ends it", async () => {
    const a = await target();
    const b = await target();
    cleanup.push(
      () => a.server.close(),
      () => b.server.close(),
    );
    const events = new EventBus();
    const seen: TimedStackEvent[] = [];
    events.subscribe((e) => seen.push(e));
    const tg = new TargetGroupController(
      { path: "/health", intervalMs: 100, timeoutMs: 50, healthyThreshold: 2, unhealthyThreshold: 2 },
      events,
    );
    cleanup.push(() => tg.stop());
    tg.register({ instanceId: "a", az: "z-a", host: "127.0.0.1", port: a.port });
    tg.register({ instanceId: "b", az: "z-b", host: "127.0.0.1", port: b.port });
    await waitFor("both healthy", () => tg.inRotation().length === 2 || undefined, 10_000);
    // Registered for a whole window (10 intervals) before slowness counts: let that pass.
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(tg.slowdown, false);

    a.state.delayMs = 3000;
    b.state.delayMs = 3000;
    await waitFor("slowdown", () => tg.slowdown || undefined, 10_000);
    await waitFor(
      "both unhealthy",
      () => tg.all().every((t) => t.health === "unhealthy") || undefined,
      10_000,
    );
    assert.deepEqual(
      tg
        .routable()
        .map((t) => t.instanceId)
        .sort(),
      ["a", "b"],
      "slow targets stay routable",
    );
    assert.ok(seen.some((e) => e.type === "target.slowdown" && e.slow));

    b.state.delayMs = 0;
    await waitFor(
      "slowdown over",
      () => (!tg.slowdown && tg.get("b")?.health === "healthy") || undefined,
      10_000,
    );
    assert.deepEqual(
      tg.routable().map((t) => t.instanceId),
      ["b"],
      "a slow outlier next to a prompt target is out of rotation",
    );
    assert.ok(seen.some((e) => e.type === "target.slowdown" && !e.slow));
  });
});
