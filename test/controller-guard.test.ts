import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ControllerGuard, type GuardClock } from "../src/local/controller-guard.ts";
import { EventBus, RemoteEvents, type StackEvent, type TimedStackEvent } from "../src/local/events/bus.ts";

type ControllerError = Extract<StackEvent, { type: "controller.error" }>;

/** A clock that moves only when told: timers fire in order as time is advanced. */
class FakeClock implements GuardClock {
  time = 0;
  private timers: { at: number; callback: () => void; id: number }[] = [];
  private nextId = 1;
  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.time + ms, callback, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  get pending(): number[] {
    return this.timers.map((t) => t.at - this.time);
  }
  /** Advances to `ms` later, firing every timer due on the way (and the ones they set). */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.callback();
      await flush();
    }
    this.time = until;
  }
}

/** Lets settled promises run their callbacks. */
const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

const guardWith = (clock: FakeClock, repeatWindowMs = 10_000) => {
  const published: ControllerError[] = [];
  const guard = new ControllerGuard({
    controller: "target-group",
    events: { publish: (e) => void (e.type === "controller.error" && published.push(e)) },
    clock,
    repeatWindowMs,
    backoff: { initialMs: 100, maxMs: 400 },
  });
  return { guard, published };
};

describe("controller guard", () => {
  it("a throw in a tick becomes a controller.error event, and the next tick runs", () => {
    const { guard, published } = guardWith(new FakeClock());
    let ticks = 0;
    const tick = guard.wrap(() => {
      ticks++;
      if (ticks === 1) throw new Error("cannot open the log");
    }, "retried at the next tick");
    assert.doesNotThrow(tick);
    tick();
    assert.equal(ticks, 2);
    assert.deepEqual(published, [
      {
        type: "controller.error",
        controller: "target-group",
        error: "cannot open the log",
        retry: "retried at the next tick",
      },
    ]);
  });

  it("a rejected promise is an event too, never an unhandled rejection", async () => {
    const { guard, published } = guardWith(new FakeClock());
    guard.run(() => Promise.reject(new Error("probe failed")), "retried at the next tick");
    await flush();
    assert.equal(published.length, 1);
    assert.equal(published[0]?.error, "probe failed");
  });

  it("identical errors are published once per window, the next one counting those held back", async () => {
    const clock = new FakeClock();
    const { guard, published } = guardWith(clock, 10_000);
    const failing = guard.wrap(() => {
      throw new Error("EACCES");
    }, "retried at the next tick");
    for (let i = 0; i < 50; i++) {
      failing();
      await clock.advance(100); // 5 s of ticks: inside one window
    }
    assert.equal(published.length, 1, "one event for 50 identical failures within the window");
    // Identical up to its numbers (a pid, a port) is identical.
    guard.report(new Error("EACCES"), "retried at the next tick");
    guard.report(new Error("redis-server 4242 exited"), "retried at the next tick");
    guard.report(new Error("redis-server 4243 exited"), "retried at the next tick");
    assert.equal(published.length, 2);
    // A different error is not held back by the first one's window.
    guard.report(new Error("ENOSPC"), "retried at the next tick");
    assert.equal(published.length, 3);
    await clock.advance(10_000);
    failing();
    assert.equal(published.length, 4);
    assert.equal(published[3]?.error, "EACCES");
    assert.equal(published[3]?.repeated, 50, "the held-back failures are counted");
  });

  it("one-shot work is retried with a doubling back-off until it succeeds", async () => {
    const clock = new FakeClock();
    const { guard, published } = guardWith(clock, 0);
    let attempts = 0;
    const handle = guard.retryUntilDone(() => {
      attempts++;
      if (attempts <= 4) throw new Error(`attempt ${attempts} failed`);
    }, "the restart is");
    assert.equal(attempts, 1);
    assert.deepEqual(clock.pending, [100]);
    await clock.advance(100);
    assert.equal(attempts, 2);
    assert.deepEqual(clock.pending, [200]);
    await clock.advance(200);
    assert.deepEqual(clock.pending, [400]);
    await clock.advance(400);
    assert.deepEqual(clock.pending, [400], "the back-off stops growing at its maximum");
    await clock.advance(400);
    assert.equal(attempts, 5);
    assert.equal(await handle.done, true);
    assert.deepEqual(clock.pending, [], "nothing left scheduled once it succeeded");
    assert.deepEqual(
      published.map((e) => e.retry),
      [
        "the restart is retried in 0.1 s",
        "the restart is retried in 0.2 s",
        "the restart is retried in 0.4 s",
        "the restart is retried in 0.4 s",
      ],
    );
  });

  it("async one-shot work that rejects is retried too; stop() cancels what is pending", async () => {
    const clock = new FakeClock();
    const { guard, published } = guardWith(clock);
    let attempts = 0;
    const handle = guard.retryUntilDone(async () => {
      attempts++;
      throw new Error("redis-server did not start");
    }, "the restart is");
    await flush();
    await clock.advance(100);
    assert.equal(attempts, 2);
    guard.stop();
    assert.equal(await handle.done, false);
    await clock.advance(10_000);
    assert.equal(attempts, 2, "nothing runs after stop");
    assert.deepEqual(
      published.map((e) => e.retry),
      ["the restart is retried in 0.1 s"],
      "the second failure, identical but for its back-off, was held back",
    );
  });
});

describe("event bus isolates its subscribers", () => {
  it("a throwing subscriber neither stops delivery to the others nor throws into the publisher", () => {
    const bus = new EventBus();
    const before: string[] = [];
    const after: string[] = [];
    bus.subscribe((e) => before.push(e.type));
    bus.subscribe((e) => {
      if (e.type === "target.healthy") throw new Error("subscriber bug");
    });
    bus.subscribe((e) => after.push(e.type));
    assert.doesNotThrow(() => bus.publish({ type: "target.healthy", instanceId: "i-1", az: "a" }));
    bus.publish({ type: "target.healthy", instanceId: "i-2", az: "a" });
    assert.deepEqual(after.filter((t) => t === "target.healthy").length, 2);
    assert.deepEqual(before.filter((t) => t === "target.healthy").length, 2);
    const errors = bus.recent().filter((e) => e.type === "controller.error");
    assert.equal(errors.length, 1, "reported once: the identical second failure is held back");
    assert.match(
      JSON.stringify(errors[0]),
      /event-bus.*subscriber failed on target\.healthy: subscriber bug/,
    );
  });

  it("a subscriber that throws on every event, the error report included, cannot loop", () => {
    const bus = new EventBus();
    const heard: TimedStackEvent[] = [];
    bus.subscribe(() => {
      throw new Error("always");
    });
    bus.subscribe((e) => heard.push(e));
    bus.publish({ type: "stack.stopped" });
    assert.deepEqual(
      heard.map((e) => e.type),
      ["stack.stopped", "controller.error"],
    );
  });

  it("a region's controller.error carries the region", () => {
    const bus = new EventBus();
    const guard = new ControllerGuard({ controller: "scaling", events: bus.scoped("eu-west-3") });
    guard.report(new Error("pidusage failed"), "retried at the next evaluation");
    const [e] = bus.recent();
    assert.equal(e?.type, "controller.error");
    assert.equal(e?.region, "eu-west-3");
  });
});

describe("a load-balancer worker's events (RemoteEvents) isolate their subscribers as the bus does", () => {
  const delivered = (seq: number, instanceId: string): TimedStackEvent => ({
    type: "target.healthy",
    instanceId,
    az: "a",
    time: new Date().toISOString(),
    seq,
    region: "eu-west-3",
  });

  it("a throwing subscriber neither stops delivery to the others nor throws into the worker; its failure goes to the runtime", () => {
    const forwarded: StackEvent[] = [];
    const events = new RemoteEvents((e) => forwarded.push(e), "load-balancer-worker");
    const before: string[] = [];
    const after: string[] = [];
    events.subscribe((e) => before.push(e.type === "target.healthy" ? e.instanceId : e.type));
    events.subscribe((e) => {
      if (e.type === "target.healthy") throw new Error("subscriber bug");
    });
    events.subscribe((e) => after.push(e.type === "target.healthy" ? e.instanceId : e.type));
    assert.doesNotThrow(() => events.deliver(delivered(1, "i-1")));
    events.deliver(delivered(2, "i-2"));
    assert.deepEqual(before, ["i-1", "i-2"]);
    assert.deepEqual(after, ["i-1", "i-2"]);
    assert.equal(forwarded.length, 1, "reported once: the identical second failure is held back");
    const [error] = forwarded;
    assert.equal(error?.type, "controller.error");
    assert.equal(error?.type === "controller.error" && error.controller, "load-balancer-worker");
    assert.match(
      error?.type === "controller.error" ? error.error : "",
      /subscriber failed on target\.healthy: subscriber bug/,
    );
  });

  it("unsubscribing stops delivery; what the worker publishes is forwarded, not delivered to itself", () => {
    const forwarded: StackEvent[] = [];
    const events = new RemoteEvents((e) => forwarded.push(e), "load-balancer-worker");
    const heard: number[] = [];
    const unsubscribe = events.subscribe((e) => heard.push(e.seq));
    events.deliver(delivered(7, "i-1"));
    unsubscribe();
    events.deliver(delivered(8, "i-1"));
    const published = events.publish({ type: "target.returned", instanceId: "i-1", az: "a" });
    assert.deepEqual(heard, [7]);
    assert.deepEqual(forwarded, [{ type: "target.returned", instanceId: "i-1", az: "a" }]);
    assert.equal(published.type, "target.returned");
  });
});
