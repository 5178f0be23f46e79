import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";

describe("event bus scoped by region", () => {
  it("a region's subscribers hear only that region's events; the whole bus hears all", () => {
    const bus = new EventBus();
    const primary = bus.scoped("eu-west-3");
    const secondary = bus.scoped("us-east-1");
    const heard = {
      primary: [] as TimedStackEvent[],
      secondary: [] as TimedStackEvent[],
      all: [] as TimedStackEvent[],
    };
    primary.subscribe((e) => heard.primary.push(e));
    secondary.subscribe((e) => heard.secondary.push(e));
    bus.subscribe((e) => heard.all.push(e));

    secondary.publish({ type: "target.healthy", instanceId: "i-secondary", az: "us-east-1a" });
    primary.publish({
      type: "target.unhealthy",
      instanceId: "i-primary",
      az: "eu-west-3a",
      reason: "timeout",
    });
    bus.publish({ type: "stack.stopping", reason: "test" });

    assert.deepEqual(
      heard.primary.map((e) => [e.type, e.region]),
      [["target.unhealthy", "eu-west-3"]],
    );
    assert.deepEqual(
      heard.secondary.map((e) => [e.type, e.region]),
      [["target.healthy", "us-east-1"]],
    );
    assert.deepEqual(
      heard.all.map((e) => e.type),
      ["target.healthy", "target.unhealthy", "stack.stopping"],
    );
  });

  it("unsubscribing a scoped listener stops it", () => {
    const bus = new EventBus();
    const primary = bus.scoped("eu-west-3");
    let count = 0;
    const unsubscribe = primary.subscribe(() => count++);
    primary.publish({ type: "target.healthy", instanceId: "i-1", az: "eu-west-3a" });
    unsubscribe();
    primary.publish({ type: "target.healthy", instanceId: "i-2", az: "eu-west-3a" });
    assert.equal(count, 1);
  });
});
