import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { probeVerdict } from "../src/local/failover/controller.ts";
import { derive } from "../src/stack/derived.ts";
import { loadStack } from "../src/stack/index.ts";
import { configPath } from "./helpers.ts";

const probe = { timeoutMs: 2000, proberUtilization: 0.3, proberMaxStallMs: 40 };

describe("the failover probe's verdict (pure)", () => {
  it("an answer passes; an error status or a failed connection fails, however busy the prober", () => {
    assert.equal(probeVerdict({ ...probe, outcome: "answered-ok" }), "pass");
    for (const outcome of ["answered-error", "connection-failed"] as const) {
      assert.equal(probeVerdict({ ...probe, outcome }), "fail");
      assert.equal(probeVerdict({ ...probe, outcome, proberUtilization: 1, proberMaxStallMs: 5000 }), "fail");
    }
  });

  it("a timeout fails when the prober was listening", () => {
    assert.equal(probeVerdict({ ...probe, outcome: "timed-out" }), "fail");
  });

  it("a timeout while the prober itself was saturated or stalled proves nothing", () => {
    assert.equal(probeVerdict({ ...probe, outcome: "timed-out", proberUtilization: 0.95 }), "inconclusive");
    assert.equal(probeVerdict({ ...probe, outcome: "timed-out", proberMaxStallMs: 1000 }), "inconclusive");
  });
});

describe("the failover probe's timeout (derived)", () => {
  it("is the description's dns.healthCheck.local.timeoutMs, else half the interval", async () => {
    const stack = await loadStack(configPath, "dev");
    assert.ok(stack.dns);
    assert.equal(derive(stack).regionHealthCheckTimeoutMs, stack.dns.healthCheck.local.timeoutMs);
    delete stack.dns.healthCheck.local.timeoutMs;
    assert.equal(derive(stack).regionHealthCheckTimeoutMs, stack.dns.healthCheck.local.intervalMs / 2);
  });
});
