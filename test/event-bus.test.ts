import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  describeEvent,
  EventBus,
  formatEvent,
  type StackEvent,
  type StackEventType,
  type TimedStackEvent,
} from "../src/local/events/bus.ts";

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

/**
 * One sample of every event type. Keyed by type, so a type added to StackEvent without a sample here
 * does not compile (`npm run typecheck`), and each sample must be of its key's type.
 */
const samples: { [T in StackEventType]: Extract<StackEvent, { type: T }> } = {
  "stack.starting": { type: "stack.starting", environment: "dev", region: "eu-west-3" },
  "stack.ready": { type: "stack.ready", listener: "http://127.0.0.1:8080", healthyTargets: 3 },
  "stack.stopping": { type: "stack.stopping", reason: "Ctrl-C" },
  "stack.stopped": { type: "stack.stopped" },
  "redis.started": { type: "redis.started", port: 6390, pid: 4101, role: "primary", az: "eu-west-3a" },
  "redis.exited": { type: "redis.exited", pid: 4101, code: null, signal: "SIGKILL", az: "eu-west-3a" },
  "redis.failover": {
    type: "redis.failover",
    fromPort: 6390,
    toPort: 6391,
    fromAz: "eu-west-3a",
    toAz: "eu-west-3b",
  },
  "redis.replica-in-sync": { type: "redis.replica-in-sync", port: 6391, az: "eu-west-3b" },
  "redis.zone-impaired": {
    type: "redis.zone-impaired",
    az: "eu-west-3a",
    node: "redis-a",
    port: 6390,
    role: "primary",
  },
  "redis.zone-restored": { type: "redis.zone-restored", az: "eu-west-3a", node: "redis-a", port: 6390 },
  "redis.sentinel": {
    type: "redis.sentinel",
    sentinel: "sentinel-1",
    event: "-failover-abort-no-good-slave",
    detail: "master stayup 127.0.0.1 6390",
  },
  "redis.sentinel-view": {
    type: "redis.sentinel-view",
    reason: "the primary in eu-west-3a was not replaced within 6 s: restarting it",
    master: { flags: "s_down,o_down,master" },
    replicas: [{ port: "6391", flags: "slave", "master-link-status": "err", "slave-priority": "100" }],
  },
  "redis.primary-seen-down": {
    type: "redis.primary-seen-down",
    sentinel: "sentinel-2",
    port: 6391,
    az: "eu-west-3b",
    sentinelSaw: { flags: "s_down,master", "last-ping-sent": "1102", "last-ok-ping-reply": "1102" },
    nodeLog: ["12:03:08.304 * Full resync requested by replica 127.0.0.1:6390"],
    latency: [],
  },
  "redis.cross-region-promoted": {
    type: "redis.cross-region-promoted",
    region: "us-east-1",
    reason: "failover: the primary region failed its health check",
    replicationLagMs: 3,
  },
  "redis.cross-region-following": {
    type: "redis.cross-region-following",
    region: "eu-west-3",
    writer: "us-east-1",
  },
  "redis.cross-region-failback": {
    type: "redis.cross-region-failback",
    region: "eu-west-3",
    caughtUpToOffset: 4242,
  },
  "redis.primary-chosen": {
    type: "redis.primary-chosen",
    node: "redis-b",
    az: "eu-west-3b",
    reason: "newest replication offset 1234",
  },
  "controller.error": {
    type: "controller.error",
    controller: "target-group",
    error: "check broke",
    retry: "i-0a1 is checked again at the next interval",
    repeated: 4,
  },
  "load-balancer.listening": { type: "load-balancer.listening", url: "http://127.0.0.1:8080" },
  "load-balancer.connections-refused": {
    type: "load-balancer.connections-refused",
    listener: "http",
    refused: 351,
    maxClientConnections: 4096,
  },
  "instance.launched": {
    type: "instance.launched",
    instanceId: "i-0a1",
    az: "eu-west-3a",
    pid: 5001,
    port: 40001,
  },
  "instance.launch-failed": {
    type: "instance.launch-failed",
    instanceId: "i-0a2",
    az: "eu-west-3b",
    reason: "spawn ENOENT",
  },
  "instance.terminating": {
    type: "instance.terminating",
    instanceId: "i-0a1",
    az: "eu-west-3a",
    reason: "scale in",
  },
  "instance.terminated": {
    type: "instance.terminated",
    instanceId: "i-0a1",
    az: "eu-west-3a",
    pid: 5001,
    code: null,
    signal: "SIGKILL",
    expected: false,
  },
  "instance.replaced": {
    type: "instance.replaced",
    instanceId: "i-0a1",
    replacementId: "i-0a3",
    az: "eu-west-3a",
  },
  "instance.replacement-held": {
    type: "instance.replacement-held",
    instanceId: "i-0a1",
    az: "eu-west-3a",
    reason: "the whole group is slow",
  },
  "group.capacity-changed": {
    type: "group.capacity-changed",
    desired: 4,
    min: 2,
    max: 6,
    reason: "CPU above 60 %",
  },
  "container-instance.registered": {
    type: "container-instance.registered",
    containerInstanceId: "ci-0b1",
    az: "eu-west-3a",
    cpuUnits: 1024,
    memoryMiB: 2048,
  },
  "container-instance.deregistered": {
    type: "container-instance.deregistered",
    containerInstanceId: "ci-0b1",
    az: "eu-west-3a",
    expected: false,
  },
  "container-instance.lost": {
    type: "container-instance.lost",
    containerInstanceId: "ci-0b1",
    az: "eu-west-3a",
    taskIds: ["task-1", "task-2"],
  },
  "task.placed": {
    type: "task.placed",
    taskId: "task-1",
    containerInstanceId: "ci-0b1",
    az: "eu-west-3a",
    placement: "spread(attribute:ecs.availability-zone)",
  },
  "task.unplaced": { type: "task.unplaced", reason: "2 task(s) do not fit on any container instance" },
  "task.running": {
    type: "task.running",
    taskId: "task-1",
    containerInstanceId: "ci-0b1",
    az: "eu-west-3a",
    pid: 6001,
    port: 41001,
  },
  "task.stopped": {
    type: "task.stopped",
    taskId: "task-1",
    containerInstanceId: "ci-0b1",
    az: "eu-west-3a",
    pid: 6001,
    reason: "container instance lost",
    expected: false,
  },
  "capacity-provider.scaling": {
    type: "capacity-provider.scaling",
    desiredInstances: 3,
    reason: "CapacityProviderReservation above 100 %",
  },
  "target.registered": { type: "target.registered", instanceId: "i-0a1", az: "eu-west-3a", port: 40001 },
  "target.healthy": { type: "target.healthy", instanceId: "i-0a1", az: "eu-west-3a" },
  "target.unhealthy": {
    type: "target.unhealthy",
    instanceId: "i-0a1",
    az: "eu-west-3a",
    reason: "2 checks failed",
  },
  "task.replacement-held": {
    type: "task.replacement-held",
    taskId: "task-0b2",
    az: "eu-west-3b",
    reason: "every task's checks time out: a slowdown, not a broken task",
  },
  "service.desired-count-changed": {
    type: "service.desired-count-changed",
    desired: 4,
    min: 2,
    max: 6,
    reason: "average CPU 93 % above the 50 % target",
  },
  "target.draining": {
    type: "target.draining",
    instanceId: "i-0a1",
    az: "eu-west-3a",
    deregistrationDelayMs: 5000,
  },
  "target.deregistered": { type: "target.deregistered", instanceId: "i-0a1", az: "eu-west-3a" },
  "target.slowdown": { type: "target.slowdown", slow: true, reason: "every target's checks time out" },
  "target.ejected": {
    type: "target.ejected",
    instanceId: "i-0a1",
    az: "eu-west-3a",
    reason: "5 consecutive 5xx answers",
    forMs: 5000,
    ejections: 2,
  },
  "target.returned": { type: "target.returned", instanceId: "i-0a1", az: "eu-west-3a" },
  "fault.injected": {
    type: "fault.injected",
    fault: "page",
    kind: "errors",
    instanceIds: ["i-0a1"],
    detail: "answers 503",
  },
  "fault.cleared": {
    type: "fault.cleared",
    fault: "az-outage:eu-west-3:eu-west-3a",
    description: "eu-west-3a impaired",
    reason: "the drill's lease lapsed",
  },
  "dns.listening": { type: "dns.listening", server: "127.0.0.1:5353", name: "app.stayup.test" },
  "dns.health-changed": {
    type: "dns.health-changed",
    healthy: false,
    region: "eu-west-3",
    answer: "127.0.0.2",
  },
  "alarm.state-changed": { type: "alarm.state-changed", alarm: "primary-region-health", state: "ALARM" },
  "failover.action": { type: "failover.action", action: "failover", region: "us-east-1", desired: 3 },
  "notification.sent": {
    type: "notification.sent",
    subject: "stayup failover: eu-west-3 → us-east-1",
    message: "the body, which the log file has in full",
    webhooks: 2,
    delivered: 1,
  },
  "address.associated": {
    type: "address.associated",
    address: "127.0.0.1:8080",
    instanceId: "i-0a3",
    previousInstanceId: "i-0a1",
  },
  "address.disassociated": {
    type: "address.disassociated",
    address: "127.0.0.1:8080",
    instanceId: "i-0a1",
    reason: "instance terminated",
  },
  "roll.started": { type: "roll.started", fromVersion: "v1", toVersion: "v2", instances: 3 },
  "roll.completed": { type: "roll.completed", version: "v2", instancesReplaced: 3, durationSeconds: 12.5 },
  "roll.rolled-back": {
    type: "roll.rolled-back",
    fromVersion: "v2",
    toVersion: "v1",
    reason: "i-0a4 failed its health checks",
  },
  "volume.attached": { type: "volume.attached", volumeId: "vol-0c1", instanceId: "i-0a1" },
  "volume.detached": {
    type: "volume.detached",
    volumeId: "vol-0c1",
    instanceId: "i-0a1",
    reason: "instance terminated",
  },
  "client.traffic": {
    type: "client.traffic",
    client: "drill region-outage",
    clientId: "mh2x-1a2b3c4d",
    seconds: [
      { secondStartMs: 1_700_000_000_000, ok: 190, failed: 10, refused: 8, timedOut: 1 },
      { secondStartMs: 1_700_000_001_000, ok: 0, failed: 200, refused: 200, timedOut: 0 },
    ],
    final: true,
  },
};

/** Fields a line leaves out on purpose, with why. */
const leftOut: Partial<Record<StackEventType, string[]>> = {
  // The notification's body is in the log file; the line names it by its subject.
  "notification.sent": ["message"],
  // The fault's id is for machines (GET /faults); the line names the fault by its description.
  "fault.cleared": ["fault"],
  // Fifteen log lines do not fit one line: they are in the drill's report and the node's redis.log.
  "redis.primary-seen-down": ["nodeLog"],
};

const timed = (e: StackEvent, region?: string): TimedStackEvent => ({
  ...e,
  time: "2026-11-22T09:15:30.123Z",
  seq: 1,
  ...(region ? { region } : {}),
});

describe("formatEvent: every event type is one meaningful line", () => {
  for (const [key, sample] of Object.entries(samples) as [StackEventType, StackEvent][]) {
    it(key, () => {
      assert.equal(sample.type, key, "the sample is of its key's type");
      const line = formatEvent(timed(sample, "eu-west-3"));
      assert.doesNotMatch(line, /undefined|\[object|NaN/);
      assert.ok(line.startsWith("09:15:30.123  "), line);
      assert.ok(line.includes(`${key} `), line);
      assert.ok(line.includes("[eu-west-3] "), line);
      const detail = describeEvent(sample);
      if (key !== "stack.stopped") assert.notEqual(detail.trim(), "", "a detail beyond the type");
      // Every id, AZ, port, count, duration and reason the event carries is in the line.
      for (const [field, value] of Object.entries(sample)) {
        if (field === "type" || leftOut[key]?.includes(field)) continue;
        for (const v of Array.isArray(value) ? value : [value]) {
          if (typeof v === "string" || typeof v === "number") {
            assert.ok(detail.includes(String(v)), `${field} ${String(v)} in "${detail}"`);
          }
        }
      }
    });
  }

  it("a client's figures add up its seconds, refused and timed out as parts of failed", () => {
    assert.equal(
      describeEvent(samples["client.traffic"]),
      "drill region-outage (run mh2x-1a2b3c4d): 190 ok, 210 failed (208 refused, 1 timed out) in 2 seconds; its last",
    );
  });

  it("durations and sizes carry their units", () => {
    assert.match(describeEvent(samples["target.ejected"]), /ejected for 5000 ms/);
    assert.match(describeEvent(samples["roll.completed"]), /3 instances replaced in 12\.5 s/);
    assert.match(describeEvent(samples["container-instance.registered"]), /1024 CPU units, 2048 MiB/);
    assert.equal(
      describeEvent({ ...samples["roll.completed"], instancesReplaced: 1, durationSeconds: 3.14159 }),
      "v2: 1 instance replaced in 3.1 s",
    );
  });

  it("each gray fault reads as what it does", () => {
    const fault = samples["fault.injected"];
    assert.equal(describeEvent(fault), "page errors on i-0a1: answers 503");
    assert.equal(
      describeEvent({ ...fault, kind: "latency", detail: "+2000 ms" }),
      "page latency on i-0a1: +2000 ms",
    );
    assert.equal(describeEvent({ ...fault, kind: "stall", detail: "stall" }), "page stall on i-0a1");
    assert.equal(describeEvent({ ...fault, kind: "none", detail: "none" }), "page fault cleared on i-0a1");
    assert.equal(
      describeEvent({
        ...fault,
        fault: "redis",
        kind: "hang",
        instanceIds: ["i-0a1", "i-0a2"],
        detail: "hang",
      }),
      "redis hang on i-0a1, i-0a2",
    );
    assert.equal(
      describeEvent({ ...fault, fault: "redis", kind: "latency", instanceIds: [], detail: "+200 ms" }),
      "redis latency on no instance: +200 ms",
    );
  });

  it("optional fields: left out when absent, never printed as undefined", () => {
    const lines = [
      describeEvent({ type: "redis.started", port: 6390, pid: 4101 }),
      describeEvent({ type: "redis.exited", pid: 4101, code: 0, signal: null }),
      describeEvent({ type: "address.associated", address: "127.0.0.1:8080", instanceId: "i-0a1" }),
      describeEvent({ ...samples["roll.rolled-back"], reason: "" }),
      describeEvent({ ...samples["container-instance.lost"], taskIds: [] }),
      describeEvent({ ...samples["task.placed"], placement: "" }),
      describeEvent({ ...samples["controller.error"], repeated: undefined }),
      describeEvent({ ...samples["notification.sent"], webhooks: 0, delivered: 0 }),
    ];
    assert.deepEqual(lines, [
      "port 6390, pid 4101",
      "pid 4101 (code 0)",
      "127.0.0.1:8080 → i-0a1",
      "v2 rolled back to v1",
      "ci-0b1 in eu-west-3a with 0 tasks",
      "task-1 on ci-0b1 in eu-west-3a",
      "target-group: check broke (i-0a1 is checked again at the next interval)",
      '"stayup failover: eu-west-3 → us-east-1" (log)',
    ]);
  });

  it("an event of a type this version does not know (a saved report's) shows its fields", () => {
    const future = { type: "target.drained", instanceId: "i-0a1", connections: 3 } as unknown as StackEvent;
    assert.equal(describeEvent(future), "instanceId=i-0a1 connections=3");
  });
});
