import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decide,
  defaultGroupPolicy,
  type GroupState,
  type ObservedInstance,
} from "../src/local/instance-group/decide.ts";

const zones = ["z-a", "z-b", "z-c"];
const policy = { ...defaultGroupPolicy, healthCheckGracePeriodMs: 10_000, replacementDelayMs: 5_000 };

const healthy = (id: string, az: string, launchedAt = 0): ObservedInstance => ({
  instanceId: id,
  az,
  lifecycle: "running",
  health: "healthy",
  launchedAt,
  everHealthy: true,
});
const unhealthy = (id: string, az: string, since: number): ObservedInstance => ({
  ...healthy(id, az),
  health: "unhealthy",
  unhealthySince: since,
});
const state = (instances: ObservedInstance[], over: Partial<GroupState> = {}): GroupState => ({
  desired: instances.length,
  availabilityZones: zones,
  impairedZones: [],
  instances,
  launchFailures: { consecutive: 0 },
  ...over,
});

describe("instance group decisions (pure)", () => {
  it("zone balance: launches fill the zones with the fewest instances, in order on ties", () => {
    const d = decide(state([healthy("a", "z-a")], { desired: 5 }), policy, 0);
    assert.deepEqual(
      d.launch.map((l) => l.az),
      ["z-b", "z-c", "z-a", "z-b"],
    );
    assert.deepEqual(d.terminate, []);
  });

  it("an impaired zone gets no launch; its capacity goes to the others", () => {
    const d = decide(state([], { desired: 4, impairedZones: ["z-a"] }), policy, 0);
    assert.deepEqual(
      d.launch.map((l) => l.az),
      ["z-b", "z-c", "z-b", "z-c"],
    );
  });

  it("a dead instance (gone from the observed list) is replaced at once", () => {
    const d = decide(state([healthy("a", "z-a")], { desired: 2 }), policy, 1);
    assert.equal(d.launch.length, 1);
    assert.equal(d.launch[0]?.replaces, undefined);
  });

  it("scale in: the most crowded zone's oldest instance, one at a time down to desired", () => {
    const d = decide(
      state(
        [healthy("a1", "z-a", 1), healthy("a2", "z-a", 2), healthy("b", "z-b", 0), healthy("c", "z-c", 0)],
        {
          desired: 2,
        },
      ),
      policy,
      10,
    );
    assert.deepEqual(
      d.terminate.map((t) => t.instanceId),
      ["a1", "b"],
    );
    assert.deepEqual(d.launch, []);
  });

  it("an unhealthy instance is not replaced before the replacement delay", () => {
    const s = state([healthy("a", "z-a"), unhealthy("b", "z-b", 1_000)]);
    const early = decide(s, policy, 1_000 + policy.replacementDelayMs - 1);
    assert.deepEqual(early.launch, []);
    assert.deepEqual(early.terminate, []);
    const due = decide(s, policy, 1_000 + policy.replacementDelayMs);
    assert.equal(due.launch.length, 1);
    assert.equal(due.launch[0]?.replaces, "b");
  });

  it("launch before terminate: the replaced instance goes only once its replacement is healthy", () => {
    const now = 100_000;
    const replacing: ObservedInstance = {
      instanceId: "n",
      az: "z-b",
      lifecycle: "running",
      health: "initial",
      launchedAt: now - 1,
      everHealthy: false,
      replaces: "b",
    };
    const s = state([healthy("a", "z-a"), unhealthy("b", "z-b", 0), replacing], { desired: 2 });
    const waiting = decide(s, policy, now);
    assert.deepEqual(waiting.launch, [], "no second replacement");
    assert.deepEqual(waiting.terminate, [], "b stays while n comes up");
    const ready = decide(
      state(
        [
          healthy("a", "z-a"),
          unhealthy("b", "z-b", 0),
          { ...replacing, health: "healthy", everHealthy: true },
        ],
        {
          desired: 2,
        },
      ),
      policy,
      now,
    );
    assert.deepEqual(
      ready.terminate.map((t) => t.instanceId),
      ["b"],
    );
    assert.deepEqual(ready.launch, []);
  });

  it("the last instance is kept while its replacement comes up", () => {
    const never: ObservedInstance = {
      instanceId: "only",
      az: "z-a",
      lifecycle: "running",
      health: "initial",
      launchedAt: 0,
      everHealthy: false,
    };
    const d = decide(state([never], { desired: 1 }), policy, policy.healthCheckGracePeriodMs);
    assert.equal(d.launch.length, 1);
    assert.equal(d.launch[0]?.replaces, "only");
    assert.deepEqual(d.terminate, [], "the only instance stays until the new one is healthy");
    const before = decide(state([never], { desired: 1 }), policy, policy.healthCheckGracePeriodMs - 1);
    assert.deepEqual(before.launch, [], "within the grace period nothing is replaced");
  });

  it("not while the whole group is unhealthy: group-wide failure is overload, not broken instances", () => {
    const s = state([unhealthy("a", "z-a", 0), unhealthy("b", "z-b", 0), unhealthy("c", "z-c", 0)]);
    const d = decide(s, policy, 60_000);
    assert.deepEqual(d.launch, []);
    assert.deepEqual(d.terminate, []);
    assert.deepEqual(
      d.held.map((h) => h.instanceId),
      ["a", "b", "c"],
    );
    assert.match(d.held[0]?.reason ?? "", /overload/);
  });

  it("after a group-wide slowdown, the first to recover does not condemn the others a moment behind", () => {
    const recovered = { ...healthy("a", "z-a"), healthySince: 60_000 };
    const s = state([recovered, unhealthy("b", "z-b", 0)]);
    assert.deepEqual(
      decide(s, policy, 60_001).launch,
      [],
      "b was unhealthy long, but a serves only since now",
    );
    const due = decide(s, policy, 60_000 + policy.replacementDelayMs);
    assert.equal(due.launch[0]?.replaces, "b", "b stayed unhealthy for the delay while a served");
  });

  it("not during a group-wide slowdown, though another instance has been healthy for a while (health flaps)", () => {
    // Every instance's checks time out now and then: a passed two checks in a row long enough ago.
    const flapped = { ...healthy("a", "z-a"), healthySince: 0 };
    const slow = state([flapped, unhealthy("b", "z-b", 0)], { slowdown: { slow: true } });
    const d = decide(slow, policy, 60_000);
    assert.deepEqual(d.launch, []);
    assert.deepEqual(d.terminate, []);
    assert.deepEqual(
      d.held.map((h) => h.instanceId),
      ["b"],
    );
    assert.match(d.held[0]?.reason ?? "", /overload/);
    // Once the slowdown is over, the delay counts from its end.
    const over = state([flapped, unhealthy("b", "z-b", 0)], { slowdown: { slow: false, endedAt: 60_000 } });
    assert.deepEqual(decide(over, policy, 60_001).launch, []);
    assert.equal(decide(over, policy, 60_000 + policy.replacementDelayMs).launch[0]?.replaces, "b");
  });

  it("a never-healthy instance past its grace period is held during a group-wide slowdown, replaced after it", () => {
    // Launched by a scale-out on a busy host: its first checks time out like everyone's.
    const starting: ObservedInstance = {
      ...healthy("n", "z-c", 0),
      health: "unhealthy",
      everHealthy: false,
      unhealthySince: 1_000,
    };
    const instances = [healthy("a", "z-a"), starting];
    const slow = decide(state(instances, { slowdown: { slow: true } }), policy, 60_000);
    assert.deepEqual(slow.launch, []);
    assert.deepEqual(slow.terminate, []);
    assert.deepEqual(
      slow.held.map((h) => h.instanceId),
      ["n"],
    );
    assert.match(slow.held[0]?.reason ?? "", /slow to start/);
    const calm = decide(state(instances, { slowdown: { slow: false, endedAt: 59_000 } }), policy, 60_000);
    assert.equal(calm.launch[0]?.replaces, "n", "still never healthy once the group is not slow: replaced");
  });

  it("never more than one replacement per zone at a time", () => {
    const s = state([
      healthy("c", "z-c"),
      unhealthy("a1", "z-a", 0),
      unhealthy("a2", "z-a", 10),
      unhealthy("b", "z-b", 20),
    ]);
    const d = decide(s, policy, 60_000);
    assert.deepEqual(
      d.launch.map((l) => l.replaces),
      ["a1", "b"],
    );
    assert.ok(d.held.some((h) => h.instanceId === "a2" && /under way/.test(h.reason)));
    // With a1's replacement in flight, a2 still waits.
    const inFlight: ObservedInstance = {
      instanceId: "n",
      az: "z-a",
      lifecycle: "launching",
      health: "initial",
      launchedAt: 60_000,
      everHealthy: false,
      replaces: "a1",
    };
    const next = decide(state([...s.instances, inFlight], { desired: 4 }), policy, 60_001);
    assert.ok(!next.launch.some((l) => l.replaces === "a2"));
  });

  it("crash-loop back-off: launches wait, exponentially longer, after repeated failures", () => {
    const failing = (consecutive: number, lastAt: number) =>
      state([], { desired: 1, launchFailures: { consecutive, lastAt } });
    assert.equal(
      decide(failing(2, 1_000), policy, 1_000).launch.length,
      1,
      "the first failures retry at once",
    );
    const third = decide(failing(3, 1_000), policy, 1_000);
    assert.deepEqual(third.launch, []);
    assert.equal(third.launchBlockedUntil, 1_000 + policy.crashLoopBaseDelayMs);
    assert.equal(decide(failing(3, 1_000), policy, 1_000 + policy.crashLoopBaseDelayMs).launch.length, 1);
    assert.equal(decide(failing(5, 0), policy, 0).launchBlockedUntil, policy.crashLoopBaseDelayMs * 4);
    assert.equal(decide(failing(50, 0), policy, 0).launchBlockedUntil, policy.crashLoopMaxDelayMs);
  });

  it("an instance that recovers by itself is no longer replaced", () => {
    const d = decide(state([healthy("a", "z-a"), healthy("b", "z-b")]), policy, 60_000);
    assert.deepEqual(d.launch, []);
    assert.deepEqual(d.terminate, []);
  });
});
