import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decide,
  defaultGroupPolicy,
  type GroupState,
  type ObservedInstance,
} from "../src/local/instance-group/decide.ts";
import { planStackRoll } from "../src/local/rolling-deploy/roll.ts";

const policy = defaultGroupPolicy;
const instance = (id: string, az: string, version: string, over: Partial<ObservedInstance> = {}) =>
  ({
    instanceId: id,
    az,
    lifecycle: "running",
    health: "healthy",
    launchedAt: 0,
    everHealthy: true,
    version,
    ...over,
  }) satisfies ObservedInstance;
const state = (instances: ObservedInstance[], version: string): GroupState => ({
  desired: 2,
  availabilityZones: ["z-a", "z-b"],
  impairedZones: [],
  instances,
  launchFailures: { consecutive: 0 },
  version,
});

describe("rolling deploy decisions (pure)", () => {
  it("a new version launches a replacement per healthy old instance first and terminates nothing yet", () => {
    const d = decide(state([instance("a", "z-a", "v1"), instance("b", "z-b", "v1")], "v2"), policy, 0);
    assert.deepEqual(d.terminate, []);
    assert.deepEqual(d.launch.map((l) => [l.az, l.replaces]).sort(), [
      ["z-a", "a"],
      ["z-b", "b"],
    ]);
  });

  it("an old instance goes only once its replacement of the new version is healthy", () => {
    const starting = instance("n", "z-a", "v2", { health: "initial", everHealthy: false, replaces: "a" });
    const waiting = decide(state([instance("a", "z-a", "v1"), starting], "v2"), policy, 1000);
    assert.deepEqual(waiting.terminate, []);
    const ready = decide(
      state([instance("a", "z-a", "v1"), { ...starting, health: "healthy", everHealthy: true }], "v2"),
      policy,
      2000,
    );
    assert.deepEqual(
      ready.terminate.map((t) => t.instanceId),
      ["a"],
    );
  });

  it("instances of the current version are left alone", () => {
    const d = decide(state([instance("a", "z-a", "v2"), instance("b", "z-b", "v2")], "v2"), policy, 0);
    assert.deepEqual(d, { launch: [], terminate: [], held: [] });
  });

  it("rollback: the new version's never-healthy instance goes at once, the old one it was replacing stays", () => {
    const broken = instance("n", "z-a", "v2", { health: "unhealthy", everHealthy: false, replaces: "a" });
    const d = decide(
      state([instance("a", "z-a", "v1"), instance("b", "z-b", "v1"), broken], "v1"),
      policy,
      0,
    );
    assert.deepEqual(
      d.terminate.map((t) => t.instanceId),
      ["n"],
    );
    assert.deepEqual(d.launch, []);
  });
});

describe("a stack roll's plan: every region with running instances, the primary first", () => {
  it("rolls a warm secondary after the primary", () => {
    assert.deepEqual(
      planStackRoll([
        { name: "us-east-1", role: "secondary", runningInstances: 1 },
        { name: "eu-west-3", role: "primary", runningInstances: 3 },
      ]),
      [
        { region: "eu-west-3", action: "roll" },
        { region: "us-east-1", action: "roll" },
      ],
    );
  });

  it("only sets the version of a region with no instance running (a pilot light)", () => {
    assert.deepEqual(
      planStackRoll([
        { name: "eu-west-3", role: "primary", runningInstances: 2 },
        { name: "us-east-1", role: "secondary", runningInstances: 0 },
      ]),
      [
        { region: "eu-west-3", action: "roll" },
        { region: "us-east-1", action: "set-version" },
      ],
    );
  });

  it("after a failover the secondary has the instances: it is rolled, the emptied primary only takes the version", () => {
    assert.deepEqual(
      planStackRoll([
        { name: "eu-west-3", role: "primary", runningInstances: 0 },
        { name: "us-east-1", role: "secondary", runningInstances: 3 },
      ]),
      [
        { region: "eu-west-3", action: "set-version" },
        { region: "us-east-1", action: "roll" },
      ],
    );
  });
});
