import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chooseInstance } from "../src/drills/victim.ts";
import { StayupError } from "../src/shared/errors.ts";

const instances = [
  { id: "i-0a", healthy: true },
  { id: "i-0b", healthy: false },
  { id: "i-0c", healthy: true },
];

describe("the instance a drill faults", () => {
  it("is a healthy one at random when none is asked for (never an unhealthy one)", () => {
    assert.equal(chooseInstance(instances, undefined, () => 0)?.id, "i-0a");
    assert.equal(chooseInstance(instances, undefined, () => 0.99)?.id, "i-0c");
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(chooseInstance(instances, undefined, () => i / 20)?.id ?? "");
    assert.deepEqual([...seen].sort(), ["i-0a", "i-0c"]);
  });

  it("is none when no instance is healthy (the drill says so)", () => {
    assert.equal(
      chooseInstance(
        instances.map((i) => ({ ...i, healthy: false })),
        undefined,
      ),
      undefined,
    );
  });

  it("is the one asked for with --instance", () => {
    assert.equal(chooseInstance(instances, "i-0c", () => 0)?.id, "i-0c");
  });

  it("refuses an unknown or unhealthy instance, naming the healthy ones", () => {
    assert.throws(
      () => chooseInstance(instances, "i-0z"),
      (e: unknown) =>
        e instanceof StayupError &&
        /no instance i-0z in this stack/.test(e.message) &&
        /now: i-0a, i-0c/.test(e.hint ?? ""),
    );
    assert.throws(
      () => chooseInstance(instances, "i-0b"),
      (e: unknown) => e instanceof StayupError && /instance i-0b is not healthy/.test(e.message),
    );
  });
});
