import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { regionOutagePhases, secondaryServingAt } from "../src/drills/region-outage.ts";
import type { TimedStackEvent } from "../src/local/events/bus.ts";

const at = (ms: number) => new Date(1_000_000 + ms).toISOString();
const event = (ms: number, e: Record<string, unknown>) =>
  ({ ...e, time: at(ms), seq: ms }) as unknown as TimedStackEvent;

describe("region-outage phases (pure)", () => {
  it("detection, alarm, standby start and DNS from the events, each from the fault; served from the last failure", () => {
    const events = [
      // Before the fault: not counted.
      event(-500, { type: "alarm.state-changed", alarm: "primary-region-health", state: "ALARM" }),
      event(7000, { type: "dns.health-changed", healthy: false, region: "eu-west-3", answer: "127.0.0.2" }),
      event(7001, { type: "alarm.state-changed", alarm: "primary-region-health", state: "ALARM" }),
      event(7100, { type: "failover.action", action: "failover", region: "us-east-1", desired: 2 }),
      // After the restore: not counted.
      event(20_000, { type: "failover.action", action: "failback", region: "us-east-1", desired: 0 }),
    ];
    const phases = regionOutagePhases(events, {
      faultAt: 1_000_000,
      restoreAt: 1_015_000,
      primary: "eu-west-3",
      secondaryHost: "127.0.0.2",
      servedAt: 1_009_500,
    });
    assert.deepEqual(phases, {
      detectionSeconds: 7,
      alarmSeconds: 7.001,
      standbyStartSeconds: 7.1,
      dnsSeconds: 7,
      clientsServedSeconds: 9.5,
    });
  });

  it("a phase that never came is null; no failure at all is served at once", () => {
    const phases = regionOutagePhases([], {
      faultAt: 0,
      restoreAt: 1,
      primary: "eu-west-3",
      secondaryHost: "127.0.0.2",
    });
    assert.equal(phases.detectionSeconds, null);
    assert.equal(phases.clientsServedSeconds, 0);
  });
});

describe("region-outage: when the secondary serves (pure)", () => {
  const at0 = { since: 1_000_000, region: "us-east-1", host: "127.0.0.2", desired: 2 };
  const dnsToSecondary = event(7000, {
    type: "dns.health-changed",
    healthy: false,
    region: "eu-west-3",
    answer: "127.0.0.2",
  });
  const healthy = (ms: number, id: string) =>
    ({
      ...event(ms, { type: "target.healthy", instanceId: id, az: "a" }),
      region: "us-east-1",
    }) as TimedStackEvent;

  it("an active standby, already at capacity, serves as soon as DNS answers it (nothing drops or rises)", () => {
    const events = [
      dnsToSecondary,
      event(7100, { type: "failover.action", action: "failover", region: "us-east-1", desired: 2 }),
    ];
    assert.equal(secondaryServingAt(events, { ...at0, healthyBefore: ["i-1", "i-2"] }), 1_007_000);
  });

  it("a pilot light serves once its new instances pass, not at the DNS answer", () => {
    const events = [dnsToSecondary, healthy(9000, "i-1"), healthy(9500, "i-2")];
    assert.equal(secondaryServingAt(events, { ...at0, healthyBefore: [] }), 1_009_500);
  });

  it("capacity without DNS answering the secondary is not serving the moved clients", () => {
    assert.equal(
      secondaryServingAt([healthy(9000, "i-3")], { ...at0, healthyBefore: ["i-1", "i-2"] }),
      undefined,
    );
  });

  it("the primary's targets do not count", () => {
    const primaryTarget = {
      ...event(9000, { type: "target.healthy", instanceId: "i-9", az: "a" }),
      region: "eu-west-3",
    } as TimedStackEvent;
    assert.equal(
      secondaryServingAt([dnsToSecondary, primaryTarget], { ...at0, healthyBefore: ["i-1"] }),
      undefined,
    );
  });
});
