import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { placementSteps } from "../src/stack/ecs.ts";
import { CapacityProviderController } from "../src/local/ecs/capacity-provider.ts";
import { ContainerInstanceGroup, ContainerInstanceLauncher } from "../src/local/ecs/container-instances.ts";
import { EcsServiceController } from "../src/local/ecs/service.ts";
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";
import { tempDir, waitFor } from "./helpers.ts";

/**
 * The local ECS controllers acting on decide.ts's decisions, without processes: tasks are launched
 * through the seam by an in-memory launcher, and the target group is a recording fake.
 */
function cluster(opts: {
  placement: "binpack" | "spread";
  desiredTasks: number;
  capacity: { min: number; desired: number; max: number };
  registered: { cpuUnits: number; memoryMiB: number };
  /** The service's clock (a fake one to step through its replacement delay). */
  now?: () => number;
}) {
  const events = new EventBus();
  const seen: TimedStackEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const targets = new Set<string>();
  const registry = {
    register: (t: { instanceId: string }) => void targets.add(t.instanceId),
    deregister: (id: string) => Promise.resolve(void targets.delete(id)),
    remove: (id: string) => void targets.delete(id),
  };
  const service = new EcsServiceController(
    {
      region: "r",
      desired: opts.desiredTasks,
      min: 0,
      max: 10,
      task: { cpuUnits: 256, memoryMiB: 256 },
      placement: placementSteps(opts.placement),
      containerInstances: () => instances.active(),
      artifact: () => "",
      environment: () => ({}),
      logDir: tempDir(),
      healthCheckGracePeriodMs: 60_000,
      unhealthyReplacementMs: 60_000,
      now: opts.now,
    },
    new ContainerInstanceLauncher(),
    registry,
    events,
  );
  const instances = new ContainerInstanceGroup(
    {
      name: "test-ecs",
      region: "r",
      availabilityZones: ["a", "b", "c"],
      capacity: opts.capacity,
      registered: opts.registered,
      logDir: tempDir(),
      onLost: (id) => service.containerInstanceLost(id),
    },
    events,
  );
  const provider = new CapacityProviderController(instances.group, service, 100, events, 50);
  const start = async () => {
    instances.group.start();
    await waitFor(
      "container instances",
      () => instances.active().length >= opts.capacity.desired || undefined,
    );
    service.start();
    provider.start();
  };
  const stop = async () => {
    provider.stop();
    await service.stop();
    await instances.group.stop();
  };
  const placement = () => service.observe().map((ci) => ({ id: ci.id, tasks: ci.tasks.length }));
  return { events, seen, targets, instances, service, provider, start, stop, placement };
}

describe("local ECS controllers", () => {
  it("binpack puts every task on one container instance; losing it stops them all and they are placed again", async () => {
    const c = cluster({
      placement: "binpack",
      desiredTasks: 2,
      capacity: { min: 2, desired: 2, max: 2 },
      registered: { cpuUnits: 2048, memoryMiB: 921 },
    });
    await c.start();
    try {
      await waitFor("2 tasks registered", () => c.targets.size === 2 || undefined);
      const full = c.placement().filter((p) => p.tasks > 0);
      assert.deepEqual(
        full.map((p) => p.tasks),
        [2],
      );
      const lostId = full[0]?.id ?? "";
      const before = new Set(c.targets);
      assert.equal(c.instances.lose(lostId), true);
      await waitFor("2 new tasks registered", () =>
        c.targets.size === 2 && [...c.targets].every((t) => !before.has(t)) ? true : undefined,
      );
      const stopped = c.seen.filter((e) => e.type === "task.stopped");
      assert.equal(stopped.length, 2);
      for (const e of stopped) if (e.type === "task.stopped") assert.equal(e.expected, false);
      assert.ok(c.seen.some((e) => e.type === "container-instance.deregistered" && !e.expected));
      assert.equal(
        c.placement().find((p) => p.id === lostId),
        undefined,
      );
    } finally {
      await c.stop();
    }
  });

  it("the capacity provider adds a container instance for a task that fits nowhere, and removes it once empty", async () => {
    const c = cluster({
      placement: "spread",
      desiredTasks: 2,
      capacity: { min: 1, desired: 1, max: 3 },
      // Room for one 256-unit task per container instance.
      registered: { cpuUnits: 256, memoryMiB: 256 },
    });
    await c.start();
    try {
      await waitFor("2 tasks on 2 container instances", () =>
        c.targets.size === 2 && c.placement().filter((p) => p.tasks === 1).length === 2 ? true : undefined,
      );
      assert.ok(c.seen.some((e) => e.type === "task.unplaced"));
      assert.ok(c.seen.some((e) => e.type === "capacity-provider.scaling" && e.desiredInstances === 2));
      c.service.setDesiredCapacity(1, "scale in (test)");
      await waitFor("back to one container instance", () =>
        c.instances.active().length === 1 && c.targets.size === 1 ? true : undefined,
      );
      assert.equal(c.instances.group.capacity.desired, 1);
      assert.deepEqual(
        c.placement().map((p) => p.tasks),
        [1],
        "the remaining container instance still runs its task",
      );
    } finally {
      await c.stop();
    }
  });

  it("a task only slow while every task is slow is held (an event), not replaced; replaced once the slowdown is over, its replacement first", async () => {
    let clock = 1_000_000;
    const c = cluster({
      placement: "spread",
      desiredTasks: 2,
      capacity: { min: 2, desired: 2, max: 2 },
      registered: { cpuUnits: 2048, memoryMiB: 921 },
      now: () => clock,
    });
    await c.start();
    try {
      const [a, b] = await waitFor("2 tasks registered", () =>
        c.targets.size === 2 ? [...c.targets] : undefined,
      );
      assert.ok(a && b);
      const az = (id: string) => c.service.tasks.get(id)?.az ?? "";
      // The target group's verdicts, as it publishes them: both healthy, then a group-wide slowdown
      // in which a's checks pass now and then and b's do not.
      c.events.publish({ type: "target.healthy", instanceId: a, az: az(a) });
      c.events.publish({ type: "target.healthy", instanceId: b, az: az(b) });
      c.events.publish({ type: "target.slowdown", slow: true, reason: "every target's checks time out" });
      c.events.publish({ type: "target.unhealthy", instanceId: b, az: az(b), reason: "timeout" });
      clock += 120_000; // twice the replacement delay
      c.service.reconcile();
      const held = c.seen.filter((e) => e.type === "task.replacement-held");
      assert.deepEqual(
        held.map((e) => e.type === "task.replacement-held" && e.taskId),
        [b],
      );
      assert.equal(c.service.tasks.size, 2, "nothing started");
      assert.ok(c.targets.has(b), "b is still registered (the target group routes to it if it must)");
      assert.ok(!c.seen.some((e) => e.type === "task.stopped"));

      c.events.publish({ type: "target.slowdown", slow: false, reason: "a target answers in time again" });
      clock += 60_000;
      c.service.reconcile();
      const placed = c.seen.find((e) => e.type === "task.placed" && e.replaces === b);
      assert.ok(placed?.type === "task.placed", "b's replacement is placed");
      const replacement = placed.taskId;
      await waitFor("the replacement registered", () => c.targets.has(replacement) || undefined);
      assert.ok(c.targets.has(b), "b serves until its replacement is healthy");
      c.events.publish({ type: "target.healthy", instanceId: replacement, az: az(replacement) });
      c.service.reconcile();
      await waitFor("b stopped", () => c.seen.find((e) => e.type === "task.stopped" && e.taskId === b));
      const stopped = c.seen.find((e) => e.type === "task.stopped" && e.taskId === b);
      assert.ok(stopped?.type === "task.stopped");
      assert.match(stopped.reason, new RegExp(`replaced by ${replacement}`));
      assert.equal(stopped.expected, true);
      assert.deepEqual([...c.targets].sort(), [a, replacement].sort());
    } finally {
      await c.stop();
    }
  });
});
