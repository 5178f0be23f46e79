/** The local ECS topology's pure decisions: placement, the capacity provider, the service scheduler. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type ContainerInstanceState,
  capacityProviderDecision,
  decideService,
  type ObservedTask,
  placeTask,
  serviceDecision,
  type ServiceState,
} from "../src/local/ecs/decide.ts";
import { placementSteps } from "../src/stack/ecs.ts";

const task = { cpuUnits: 256, memoryMiB: 256 };
const instance = (id: string, az: string, tasks = 0): ContainerInstanceState => ({
  id,
  az,
  cpuUnits: 2048,
  memoryMiB: 1843,
  tasks: Array.from({ length: tasks }, () => ({ ...task })),
});

/** Places `count` tasks one after another, as the scheduler would. */
function placeAll(instances: ContainerInstanceState[], count: number, placement: "binpack" | "spread") {
  for (let n = 0; n < count; n++) {
    const id = placeTask(instances, task, placementSteps(placement));
    assert.ok(id, `task ${n} placed`);
    instances.find((i) => i.id === id)?.tasks.push({ ...task });
  }
  return instances.map((i) => i.tasks.length);
}

describe("local ECS decisions", () => {
  it("binpack on CPU puts every task on one instance while it has room (dev)", () => {
    const tasks = placeAll([instance("a", "eu-west-3a"), instance("b", "eu-west-3b")], 3, "binpack");
    assert.deepEqual(tasks, [3, 0]);
  });

  it("spread over AZs, then instances, puts one task per AZ first (prod)", () => {
    const cluster = [
      instance("a1", "eu-west-3a"),
      instance("a2", "eu-west-3a"),
      instance("b1", "eu-west-3b"),
      instance("c1", "eu-west-3c"),
    ];
    assert.deepEqual(placeAll(cluster, 3, "spread"), [1, 0, 1, 1]);
    // The fourth and fifth: AZ a and b tie at 1 with c; a then spreads over its two instances.
    assert.deepEqual(
      placeAll(cluster, 2, "spread"),
      [1, 1, 2, 1].map((n, i) => (i === 2 ? n : n)).slice(0, 4),
    );
  });

  it("a task that fits nowhere is not placed", () => {
    const full = { ...instance("a", "eu-west-3a"), cpuUnits: 256, memoryMiB: 256, tasks: [{ ...task }] };
    assert.equal(placeTask([full], task, placementSteps("binpack")), undefined);
  });

  it("capacity provider: scales out for unplaced tasks, keeps headroom at 75 %, removes only empty instances", () => {
    const busy = [instance("a", "eu-west-3a", 3), instance("b", "eu-west-3b", 0)];
    assert.deepEqual(
      capacityProviderDecision({
        instances: busy,
        unplacedTasks: 1,
        targetUtilizationPercent: 100,
        min: 1,
        max: 4,
      }),
      { desiredInstances: 2, removable: [] },
    );
    // At 100 % one instance with tasks needs one instance: the empty one goes.
    assert.deepEqual(
      capacityProviderDecision({
        instances: busy,
        unplacedTasks: 0,
        targetUtilizationPercent: 100,
        min: 1,
        max: 4,
      }),
      { desiredInstances: 1, removable: ["b"] },
    );
    // At 75 %, three instances with tasks want four: one spare for a replacement task.
    const three = [instance("a", "x", 1), instance("b", "y", 1), instance("c", "z", 1)];
    assert.equal(
      capacityProviderDecision({
        instances: three,
        unplacedTasks: 0,
        targetUtilizationPercent: 75,
        min: 2,
        max: 6,
      }).desiredInstances,
      4,
    );
  });

  it("service scheduler: starts the missing tasks, stops the newest surplus", () => {
    assert.deepEqual(serviceDecision(3, ["t1"]), { start: 2, stop: [] });
    assert.deepEqual(serviceDecision(1, ["t1", "t2", "t3"]), { start: 0, stop: ["t3", "t2"] });
  });
});

/** Tasks as the service scheduler sees them; times in ms of a fake clock. */
const policy = { healthCheckGracePeriodMs: 10_000, replacementDelayMs: 5_000 };
const healthyTask = (taskId: string, az: string, healthySince = 0): ObservedTask => ({
  taskId,
  az,
  lifecycle: "running",
  health: "healthy",
  startedAt: 0,
  healthySince,
  everHealthy: true,
});
const unhealthyTask = (taskId: string, az: string, since: number): ObservedTask => ({
  ...healthyTask(taskId, az),
  health: "unhealthy",
  healthySince: undefined,
  unhealthySince: since,
});
const service = (tasks: ObservedTask[], over: Partial<ServiceState> = {}): ServiceState => ({
  desired: tasks.length,
  tasks,
  ...over,
});

describe("the ECS service's task replacement (pure): no death spiral", () => {
  it("a task unhealthy for the replacement delay while another serves is replaced, the replacement started first", () => {
    const s = service([healthyTask("a", "z-a"), unhealthyTask("b", "z-b", 1_000)]);
    assert.deepEqual(decideService(s, policy, 1_000 + policy.replacementDelayMs - 1), {
      start: [],
      stop: [],
      held: [],
    });
    const due = decideService(s, policy, 1_000 + policy.replacementDelayMs);
    assert.deepEqual(
      due.start.map((st) => st.replaces),
      ["b"],
    );
    assert.deepEqual(due.stop, [], "b keeps running until its replacement is healthy");
    // Its replacement healthy: b stops, and nothing else starts.
    const replacement: ObservedTask = { ...healthyTask("n", "z-b", 7_000), startedAt: 6_000, replaces: "b" };
    const done = decideService({ ...s, tasks: [...s.tasks, replacement] }, policy, 7_000);
    assert.deepEqual(
      done.stop.map((st) => st.taskId),
      ["b"],
    );
    assert.deepEqual(done.start, []);
  });

  it("a slow-but-running task is held while the whole service is slow, though another has passed its checks", () => {
    // Every task's checks time out now and then: a passed two in a row a while ago, b did not.
    const s = service([healthyTask("a", "z-a", 0), unhealthyTask("b", "z-b", 0)], {
      slowdown: { slow: true },
    });
    const d = decideService(s, policy, 60_000);
    assert.deepEqual(d.start, []);
    assert.deepEqual(d.stop, []);
    assert.deepEqual(
      d.held.map((h) => h.taskId),
      ["b"],
    );
    assert.match(d.held[0]?.reason ?? "", /every task's health checks are timing out: overload/);
    // Over: the delay counts again from the slowdown's end.
    const over = { ...s, slowdown: { slow: false, endedAt: 60_000 } };
    assert.deepEqual(decideService(over, policy, 60_000 + policy.replacementDelayMs - 1).start, []);
    assert.equal(decideService(over, policy, 60_000 + policy.replacementDelayMs).start[0]?.replaces, "b");
  });

  it("no task is replaced while none is healthy: every task unhealthy is overload", () => {
    const s = service([unhealthyTask("a", "z-a", 0), unhealthyTask("b", "z-b", 0)]);
    const d = decideService(s, policy, 60_000);
    assert.deepEqual(d.start, []);
    assert.deepEqual(d.stop, []);
    assert.deepEqual(d.held.map((h) => h.taskId).sort(), ["a", "b"]);
  });

  it("a task never healthy is held during a slowdown, replaced after the grace period otherwise", () => {
    const starting: ObservedTask = {
      taskId: "n",
      az: "z-c",
      lifecycle: "running",
      health: "unhealthy",
      startedAt: 0,
      unhealthySince: 1_000,
      everHealthy: false,
    };
    const tasks = [healthyTask("a", "z-a"), starting];
    const slow = decideService(service(tasks, { slowdown: { slow: true } }), policy, 60_000);
    assert.deepEqual(slow.start, []);
    assert.deepEqual(
      slow.held.map((h) => h.taskId),
      ["n"],
    );
    assert.equal(decideService(service(tasks), policy, policy.healthCheckGracePeriodMs - 1).start.length, 0);
    assert.equal(
      decideService(service(tasks), policy, policy.healthCheckGracePeriodMs).start[0]?.replaces,
      "n",
    );
  });

  it("at most one replacement per zone at a time, counting those in flight", () => {
    const s = service([
      healthyTask("c", "z-c"),
      unhealthyTask("a1", "z-a", 0),
      unhealthyTask("a2", "z-a", 10),
      unhealthyTask("b", "z-b", 20),
    ]);
    const d = decideService(s, policy, 60_000);
    assert.deepEqual(
      d.start.map((st) => st.replaces),
      ["a1", "b"],
    );
    assert.deepEqual(d.stop, []);
    assert.ok(d.held.some((h) => h.taskId === "a2" && /a replacement in z-a is under way/.test(h.reason)));
    // a1's replacement still starting: a2 still waits, and nothing else starts.
    const inFlight: ObservedTask = {
      taskId: "n",
      az: "z-b",
      lifecycle: "launching",
      health: "initial",
      startedAt: 60_000,
      everHealthy: false,
      replaces: "a1",
    };
    const next = decideService({ ...s, tasks: [...s.tasks, inFlight] }, policy, 60_001);
    assert.ok(!next.start.some((st) => st.replaces === "a2"), "a2 waits for a1's replacement");
    assert.deepEqual(
      next.start.map((st) => st.replaces),
      ["b"],
      "b's zone has no replacement under way yet",
    );
  });

  it("a task that exited is started again at once; a scale-in stops the newest", () => {
    const two = service([healthyTask("a", "z-a"), healthyTask("b", "z-b")]);
    const lost = decideService({ ...two, tasks: [healthyTask("a", "z-a")] }, policy, 1);
    assert.deepEqual(lost.start, [{ reason: "running 1 of 2 desired" }]);
    const scaledIn = decideService({ ...two, desired: 1 }, policy, 1);
    assert.deepEqual(scaledIn, {
      start: [],
      stop: [{ taskId: "b", reason: "above the desired count" }],
      held: [],
    });
  });
});
