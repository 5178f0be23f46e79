import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventBus, type EventPublisher, type TimedStackEvent } from "../src/local/events/bus.ts";
import { InstanceGroupController, type TargetRegistry } from "../src/local/instance-group/controller.ts";
import type {
  InstanceExit,
  InstanceHandle,
  Launcher,
  LaunchSpec,
} from "../src/local/instance-group/launcher.ts";
import { tempDir } from "./helpers.ts";

/** Instances as plain objects: they "listen" when the test says so and "exit" when told to. */
class FakeLauncher implements Launcher {
  readonly specs: LaunchSpec[] = [];
  readonly handles = new Map<string, FakeInstance>();
  private readonly pending = new Map<
    string,
    { resolve: (h: InstanceHandle) => void; reject: (e: Error) => void }
  >();
  launch(spec: LaunchSpec): Promise<InstanceHandle> {
    this.specs.push(spec);
    return new Promise((resolve, reject) => this.pending.set(spec.instanceId, { resolve, reject }));
  }
  /** The instance listens. */
  up(instanceId: string): FakeInstance {
    const spec = this.specs.find((s) => s.instanceId === instanceId);
    const waiting = this.pending.get(instanceId);
    assert.ok(spec && waiting, `no launch of ${instanceId} pending`);
    this.pending.delete(instanceId);
    const handle = new FakeInstance(spec);
    this.handles.set(instanceId, handle);
    waiting.resolve(handle);
    return handle;
  }
  fail(instanceId: string, reason: string): void {
    this.pending.get(instanceId)?.reject(new Error(reason));
    this.pending.delete(instanceId);
  }
  pendingIds(): string[] {
    return [...this.pending.keys()];
  }
}

class FakeInstance implements InstanceHandle {
  readonly instanceId: string;
  readonly az: string;
  readonly host = "127.0.0.1";
  readonly port = 1;
  readonly pid = 0;
  readonly exited: Promise<InstanceExit>;
  readonly signals: NodeJS.Signals[] = [];
  alive = true;
  private exit!: (e: InstanceExit) => void;
  constructor(spec: LaunchSpec) {
    this.instanceId = spec.instanceId;
    this.az = spec.az;
    this.exited = new Promise((r) => {
      this.exit = r;
    });
  }
  terminate(signal: NodeJS.Signals): void {
    this.signals.push(signal);
    this.die(null, signal);
  }
  die(code: number | null, signal: string | null): void {
    if (!this.alive) return;
    this.alive = false;
    this.exit({ code, signal });
  }
}

class FakeTargets implements TargetRegistry {
  readonly registered = new Set<string>();
  /** Set to hold draining until the test calls it. */
  drainGate?: Promise<void>;
  register(t: { instanceId: string }): void {
    this.registered.add(t.instanceId);
  }
  async deregister(instanceId: string): Promise<void> {
    await this.drainGate;
    this.registered.delete(instanceId);
  }
  remove(instanceId: string): void {
    this.registered.delete(instanceId);
  }
}

const settle = () => new Promise((r) => setImmediate(r));

function group(events: EventPublisher, desired: number, clock: { now: number }) {
  const launcher = new FakeLauncher();
  const targets = new FakeTargets();
  const g = new InstanceGroupController(
    {
      name: "g",
      region: "r1",
      availabilityZones: ["z-a", "z-b"],
      capacity: { min: 0, desired, max: 4 },
      serviceEntry: "service.js",
      version: "v7",
      instanceEnvironment: () => ({ REDIS_URL: "redis://x" }),
      logDir: tempDir(),
      policy: { healthCheckGracePeriodMs: 10_000, replacementDelayMs: 5_000 },
      launcher,
      now: () => clock.now,
      reconcileIntervalMs: 0,
    },
    targets,
    events,
  );
  return { g, launcher, targets };
}

describe("instance group through the launcher seam (fake launcher, fake clock)", () => {
  it("launches through the seam with a full spec, registers each instance once it listens", async () => {
    const bus = new EventBus();
    const clock = { now: 0 };
    const { g, launcher, targets } = group(bus.scoped("r1"), 2, clock);
    g.start();
    assert.deepEqual(
      launcher.specs.map((s) => s.az),
      ["z-a", "z-b"],
    );
    const spec = launcher.specs[0];
    assert.equal(spec?.version, "v7");
    assert.equal(spec?.artifact, "service.js");
    assert.equal(spec?.environment.REDIS_URL, "redis://x");
    assert.equal(spec?.region, "r1");
    for (const id of launcher.pendingIds()) launcher.up(id);
    await settle();
    assert.equal(targets.registered.size, 2);
    assert.deepEqual(
      g.list().map((i) => i.state),
      ["pending", "pending"],
    );
    await g.stop();
  });

  it("a dead instance is replaced at once; a crash loop backs off", async () => {
    const bus = new EventBus();
    const clock = { now: 0 };
    const { g, launcher } = group(bus.scoped("r1"), 1, clock);
    g.start();
    const first = launcher.up(launcher.pendingIds()[0] ?? "");
    await settle();
    bus.scoped("r1").publish({ type: "target.healthy", instanceId: first.instanceId, az: first.az });
    clock.now = 60_000;
    first.die(1, null);
    await settle();
    assert.equal(launcher.pendingIds().length, 1, "replacement launched at once");
    // Three launches in a row fail: the third failure holds the next launch back.
    for (let n = 0; n < 3; n++) {
      launcher.fail(launcher.pendingIds()[0] ?? "", "exited during launch");
      await settle();
    }
    assert.equal(launcher.pendingIds().length, 0, "backing off");
    await g.stop();
  });

  it("a secondary region's events on the same bus do not move the primary's group", async () => {
    const bus = new EventBus();
    const clock = { now: 0 };
    const { g, launcher } = group(bus.scoped("r1"), 1, clock);
    const heard: TimedStackEvent[] = [];
    bus.subscribe((e) => heard.push(e));
    g.start();
    const only = launcher.up(launcher.pendingIds()[0] ?? "");
    await settle();
    // Never healthy past the grace period: a replacement is launched, the only instance kept.
    clock.now = 10_000;
    g.reconcile();
    const replacementId = launcher.pendingIds()[0] ?? "";
    const replacement = launcher.up(replacementId);
    await settle();
    // The secondary region reports a target healthy under the replacement's id.
    bus.scoped("r2").publish({ type: "target.healthy", instanceId: replacement.instanceId, az: "z-b" });
    await settle();
    assert.ok(only.alive, "the primary's kept instance is still running");
    assert.deepEqual(only.signals, []);
    // The primary's own target group says so: now it goes.
    bus
      .scoped("r1")
      .publish({ type: "target.healthy", instanceId: replacement.instanceId, az: replacement.az });
    await settle();
    assert.deepEqual(only.signals, ["SIGTERM"]);
    assert.ok(heard.some((e) => e.type === "instance.replaced" && e.instanceId === only.instanceId));
    await g.stop();
  });

  it("group-wide unhealthy instances are held, with an event saying why", async () => {
    const bus = new EventBus();
    const r1 = bus.scoped("r1");
    const clock = { now: 0 };
    const { g, launcher } = group(r1, 2, clock);
    const held: TimedStackEvent[] = [];
    bus.subscribe((e) => e.type === "instance.replacement-held" && held.push(e));
    g.start();
    const handles = launcher.pendingIds().map((id) => launcher.up(id));
    await settle();
    for (const h of handles) r1.publish({ type: "target.healthy", instanceId: h.instanceId, az: h.az });
    for (const h of handles)
      r1.publish({ type: "target.unhealthy", instanceId: h.instanceId, az: h.az, reason: "timeout" });
    clock.now = 600_000;
    g.reconcile();
    assert.deepEqual(launcher.pendingIds(), []);
    assert.ok(handles.every((h) => h.alive));
    assert.equal(held.length, 2);
    await g.stop();
  });

  it("scale in: SIGTERM only once the target has drained (deregistration delay)", async () => {
    const bus = new EventBus();
    const { g, launcher, targets } = group(bus.scoped("r1"), 2, { now: 0 });
    g.start();
    const handles = launcher.pendingIds().map((id) => launcher.up(id));
    await settle();
    let drained!: () => void;
    targets.drainGate = new Promise((r) => {
      drained = r;
    });
    g.setDesiredCapacity(1, "test");
    await settle();
    const victim = handles.find(
      (h) => g.list().find((i) => i.instanceId === h.instanceId)?.state === "terminating",
    );
    assert.ok(victim, "one instance is terminating");
    assert.deepEqual(victim.signals, [], "still draining: no signal yet");
    drained();
    await settle();
    await settle();
    assert.deepEqual(victim.signals, ["SIGTERM"]);
    await g.stop();
  });

  it("stop() waits for launches under way and stops what they started", async () => {
    const bus = new EventBus();
    const { g, launcher } = group(bus.scoped("r1"), 1, { now: 0 });
    g.start();
    const id = launcher.pendingIds()[0] ?? "";
    const stopped = g.stop();
    const late = launcher.up(id);
    await stopped;
    assert.equal(late.alive, false);
  });
});
