/** The local ECS topology's pure decisions: placement, the capacity provider, the service scheduler. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type ContainerInstanceState,
  capacityProviderDecision,
  placeTask,
  serviceDecision,
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
