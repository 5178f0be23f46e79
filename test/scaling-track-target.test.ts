import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventBus } from "../src/local/events/bus.ts";
import { ScalingController, trackTarget, type TrackingState } from "../src/local/scaling/controller.ts";

const settings = { targetCpuPercent: 50, evaluationPeriods: 2, scaleInCooldownMs: 5000 };
const group = (average: number, counts: Partial<TrackingState> = {}): TrackingState => ({
  desired: 2,
  min: 2,
  max: 4,
  average,
  above: 0,
  below: 0,
  ...counts,
});

describe("target tracking (pure)", () => {
  it("above target but not saturated: scales out only after evaluationPeriods evaluations", () => {
    const first = trackTarget(group(70), settings, 60_000);
    assert.equal(first.scaleTo, undefined);
    assert.equal(first.above, 1);
    const second = trackTarget(group(70, { above: first.above }), settings, 60_000);
    assert.equal(second.scaleTo, 3, "ceil(2 × 70 / 50)");
    assert.deepEqual([second.above, second.below], [0, 0]);
  });

  it("saturated: scales out at the first evaluation, as far as the average asks (bounded by max)", () => {
    const step = trackTarget(group(100), settings, 0);
    assert.equal(step.scaleTo, 4);
    assert.match(step.reason ?? "", /saturated/);
  });

  it("saturated at max: nothing to do", () => {
    assert.equal(trackTarget(group(100, { desired: 4 }), settings, 0).scaleTo, undefined);
  });

  it("scale-in: one instance, after three times the periods clearly below target and the cooldown", () => {
    const low = group(10, { desired: 4, below: 5 });
    assert.equal(trackTarget(low, settings, 60_000).scaleTo, 3);
    assert.equal(trackTarget(low, settings, 1000).scaleTo, undefined, "cooldown not over");
    assert.equal(trackTarget(group(10, { desired: 4, below: 4 }), settings, 60_000).scaleTo, undefined);
    assert.equal(trackTarget(group(10), settings, 60_000).scaleTo, undefined, "never below min");
  });
});

describe("the group's average CPU in status", () => {
  it("is measured while instances serve, and gone once none does (no stale figure for an empty group)", async () => {
    let instances = [
      {
        instanceId: "i-a",
        pid: process.pid,
        state: "in-service" as const,
        launchedAt: 0,
        eventLoopUtilization: 0.03,
      },
    ];
    const capacity = { min: 0, desired: 1, max: 2 };
    const scaling = new ScalingController(
      { list: () => instances as never, capacity, setDesiredCapacity: () => undefined },
      {
        targetCpuPercent: 50,
        evaluationIntervalMs: 1000,
        evaluationPeriods: 2,
        warmupMs: 0,
        scaleInCooldownMs: 0,
      },
      new EventBus(),
    );
    await scaling.evaluate();
    assert.equal(typeof scaling.lastAverage, "number");
    instances = [];
    await scaling.evaluate();
    assert.equal(scaling.lastAverage, undefined);
    scaling.stop();
  });
});
