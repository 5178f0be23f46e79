import assert from "node:assert/strict";
import dgram from "node:dgram";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { after, describe, it } from "node:test";
import dnsPacket from "dns-packet";
import { request } from "undici";
import { FailoverDnsServer } from "../src/local/dns/server.ts";
import { EventBus, type StackEvent, type TimedStackEvent } from "../src/local/events/bus.ts";
import { FailoverController } from "../src/local/failover/controller.ts";
import type { EcsLocalStack } from "../src/local/ecs/stack.ts";
import { GrayFaultInjector } from "../src/local/faults/gray-faults.ts";
import { InstanceGroupController, type TargetRegistry } from "../src/local/instance-group/controller.ts";
import type {
  InstanceExit,
  InstanceHandle,
  Launcher,
  LaunchSpec,
} from "../src/local/instance-group/launcher.ts";
import { LoadBalancer, type TargetSource } from "../src/local/load-balancer/balancer.ts";
import { Notifier } from "../src/local/notifications/notifier.ts";
import { processFileName } from "../src/local/processes.ts";
import { RedisController } from "../src/local/redis/controller.ts";
import type { LocalRegion } from "../src/local/region.ts";
import { type LocalStack, REGISTRY_RETRY } from "../src/local/runtime.ts";
import { ScalingController } from "../src/local/scaling/controller.ts";
import { SingleInstanceGroup } from "../src/local/single-instance/group.ts";
import { type Target, TargetGroupController } from "../src/local/target-group/controller.ts";
import { EcsServiceController } from "../src/local/ecs/service.ts";
import { createLocalStack } from "../src/local/topologies/index.ts";
import { findFreePort } from "../src/shared/net.ts";
import { loadStack } from "../src/stack/index.ts";
import { description } from "./aws-helpers.ts";
import { configPath, tempDir, waitFor } from "./helpers.ts";

type ControllerError = Extract<TimedStackEvent, { type: "controller.error" }>;

const errorsOf = (bus: EventBus, controller: string) =>
  bus
    .recent()
    .filter((e): e is ControllerError => e.type === "controller.error" && e.controller === controller);
const seen = (bus: EventBus, type: StackEvent["type"]) => bus.recent().some((e) => e.type === type);

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

/** An HTTP server on loopback answering `answer(request number)`. */
async function server(answer: (n: number) => number): Promise<{ url: string; hits: () => number }> {
  let n = 0;
  const s = http.createServer((req, res) => {
    req.resume();
    res.statusCode = answer(++n);
    res.end("ok");
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  cleanup.push(
    () => new Promise((r) => s.close(r)),
    () => s.closeAllConnections(),
  );
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, hits: () => n };
}

class Instance implements InstanceHandle {
  readonly host = "127.0.0.1";
  readonly pid = 0;
  alive = true;
  readonly exited: Promise<InstanceExit>;
  private exit!: (e: InstanceExit) => void;
  constructor(
    readonly instanceId: string,
    readonly az: string,
    readonly port = 1,
  ) {
    this.exited = new Promise((r) => (this.exit = r));
  }
  terminate(signal: NodeJS.Signals): void {
    this.alive = false;
    this.exit({ code: null, signal });
  }
}

/** A launcher whose first launch throws at once (before any promise), then launches instantly. */
class FailingOnceLauncher implements Launcher {
  launches = 0;
  launch(spec: LaunchSpec): Promise<InstanceHandle> {
    if (++this.launches === 1) throw new Error("cannot open the log: EACCES");
    return Promise.resolve(new Instance(spec.instanceId, spec.az));
  }
}

const noTargets: TargetRegistry = { register: () => undefined, deregister: async () => {}, remove: () => {} };

describe("a controller's failure is a controller.error event and a retry, for every controller", () => {
  it("instance group: a launch that throws is retried at the next pass", async () => {
    const bus = new EventBus();
    const launcher = new FailingOnceLauncher();
    const group = new InstanceGroupController(
      {
        name: "g",
        region: "r1",
        availabilityZones: ["z-a"],
        capacity: { min: 1, desired: 1, max: 1 },
        serviceEntry: "service.js",
        instanceEnvironment: () => ({}),
        logDir: tempDir(),
        launcher,
        reconcileIntervalMs: 20,
      },
      noTargets,
      bus.scoped("r1"),
    );
    cleanup.push(() => group.stop());
    group.start();
    await waitFor("the launch retried", () => group.list().length === 1 || undefined);
    const [error] = errorsOf(bus, "instance-group");
    assert.match(error?.error ?? "", /cannot open the log/);
    assert.equal(error?.retry, "retried at the next reconcile pass");
    assert.equal(error?.region, "r1");
  });

  it("ECS service: a task launch that throws is retried at the next pass", async () => {
    const bus = new EventBus();
    const launcher = new FailingOnceLauncher();
    const service = new EcsServiceController(
      {
        region: "r1",
        desired: 1,
        task: { cpuUnits: 256, memoryMiB: 512 },
        placement: [],
        containerInstances: () => [
          { containerInstanceId: "ci-1", az: "z-a", cpuUnits: 1024, memoryMiB: 2048 },
        ],
        artifact: () => "service.js",
        environment: () => ({}),
        logDir: tempDir(),
        healthCheckGracePeriodMs: 60_000,
        unhealthyReplacementMs: 60_000,
      },
      launcher,
      noTargets,
      bus,
    );
    cleanup.push(() => service.stop());
    service.start();
    await waitFor("the task retried", () => seen(bus, "task.running") || undefined);
    assert.match(errorsOf(bus, "ecs-service")[0]?.error ?? "", /cannot open the log/);
  });

  it("target group: a health check that throws is an event; the next interval checks again", async () => {
    const bus = new EventBus();
    const upstream = await server(() => 200);
    class FailingOnce extends TargetGroupController {
      failed = false;
      protected override async check(t: Target): Promise<void> {
        if (!this.failed) {
          this.failed = true;
          throw new Error("check broke");
        }
        return super.check(t);
      }
    }
    const tg = new FailingOnce(
      { path: "/", intervalMs: 50, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 2 },
      bus,
    );
    cleanup.push(() => tg.stop());
    tg.register({
      instanceId: "i-1",
      az: "z-a",
      host: "127.0.0.1",
      port: Number(new URL(upstream.url).port),
    });
    await waitFor("healthy after the failed check", () => seen(bus, "target.healthy") || undefined);
    const [error] = errorsOf(bus, "target-group");
    assert.equal(error?.error, "check broke");
    assert.equal(error?.retry, "i-1 is checked again at the next interval");
  });

  it("scaling: an evaluation that throws is retried at the next one", async () => {
    const bus = new EventBus();
    const wanted: number[] = [];
    const capacity = { min: 1, desired: 1, max: 2 };
    const group = {
      capacity,
      list: () => [
        {
          instanceId: "i-1",
          az: "z-a",
          pid: process.pid,
          port: 1,
          state: "in-service" as const,
          launchedAt: 0,
          eventLoopUtilization: 0.9,
        },
      ],
      setDesiredCapacity: (desired: number) => {
        if (wanted.push(desired) === 1) throw new Error("group refused the change");
        capacity.desired = desired;
      },
    };
    const scaling = new ScalingController(
      group,
      {
        targetCpuPercent: 10,
        evaluationIntervalMs: 30,
        evaluationPeriods: 1,
        warmupMs: 0,
        scaleInCooldownMs: 0,
      },
      bus,
    );
    cleanup.push(() => scaling.stop());
    scaling.start();
    await waitFor("scaled out after the failure", () => capacity.desired === 2 || undefined);
    assert.equal(errorsOf(bus, "scaling")[0]?.error, "group refused the change");
    assert.equal(errorsOf(bus, "scaling")[0]?.retry, "retried at the next evaluation");
  });

  it("failover: a failover action that throws is retried with back-off until done", async () => {
    const bus = new EventBus();
    const closedPort = await findFreePort("127.0.0.1");
    let attempts = 0;
    const secondary = {
      name: "r2",
      options: { listener: { host: "127.0.0.2", port: closedPort } },
      group: {
        setCapacity: () => {
          if (++attempts === 1) throw new Error("secondary group unreachable");
        },
      },
    } as unknown as LocalRegion;
    const primary = {
      name: "r1",
      options: { listener: { host: "127.0.0.1", port: closedPort } },
    } as unknown as LocalRegion;
    const failover = new FailoverController({
      dns: { healthCheck: { local: { intervalMs: 50 }, failureThreshold: 1 }, ttlSeconds: 1 } as never,
      primary,
      secondary,
      derived: {
        regionHealthCheckPath: "/health/deep",
        failoverCapacity: { min: 2, desired: 2 },
        secondaryStandby: { min: 0, desired: 0 },
        failoverRecords: [
          { failover: "PRIMARY", value: "primary", healthCheck: "primary" },
          { failover: "SECONDARY", value: "secondary" },
        ],
      } as never,
      events: bus,
      notifier: { send: async () => {} } as unknown as Notifier,
    });
    cleanup.push(() => failover.stop());
    failover.start();
    await waitFor("the failover done after its retry", () => seen(bus, "failover.action") || undefined);
    assert.equal(attempts, 2);
    const [error] = errorsOf(bus, "failover");
    assert.equal(error?.error, "secondary group unreachable");
    assert.equal(error?.retry, "the failover action is retried in 0.5 s");
  });

  it("notifier: a webhook delivery that fails is an event and is retried with back-off", async () => {
    const bus = new EventBus();
    const webhook = await server((n) => (n === 1 ? 500 : 200));
    const stack = await description("dev", (d) => {
      d.notifications = { ...d.notifications, webhooks: [webhook.url] };
    });
    const notifier = new Notifier(stack, bus, { backoff: { initialMs: 50, maxMs: 50 } });
    await notifier.send("stayup failover: r1 → r2", { event: "failover" });
    await waitFor("the second delivery", () => webhook.hits() === 2 || undefined);
    const [error] = errorsOf(bus, "notifier");
    assert.match(error?.error ?? "", /answered 500/);
    assert.equal(error?.retry, `the delivery to ${webhook.url} is retried in 0.05 s`);
    const sent = bus.recent().find((e) => e.type === "notification.sent");
    assert.equal(sent?.type === "notification.sent" && sent.delivered, 0, "the first attempt failed");
  });

  it("DNS server: a query it fails to answer is an event; the client's retry is answered", async () => {
    const bus = new EventBus();
    const dns = new FailoverDnsServer(
      { name: "app.stayup.test", ttlSeconds: 5, local: { host: "127.0.0.1", port: 0 } } as never,
      bus,
    );
    let asked = 0;
    await dns.listen(0, () => {
      if (++asked === 1) throw new Error("answer broke");
      return "127.0.0.1";
    });
    cleanup.push(() => dns.close());
    const client = dgram.createSocket("udp4");
    cleanup.push(() => client.close());
    const query = dnsPacket.encode({
      type: "query",
      id: 7,
      questions: [{ type: "A", name: "app.stayup.test" }],
    });
    const answered = new Promise<dnsPacket.Packet>((resolve) =>
      client.on("message", (m) => resolve(dnsPacket.decode(m))),
    );
    // A resolver retries an unanswered query; so does this client, until one is answered.
    const timer = setInterval(() => client.send(query, dns.port, "127.0.0.1"), 200);
    client.send(query, dns.port, "127.0.0.1");
    const answer = await answered;
    clearInterval(timer);
    assert.equal((answer.answers?.[0] as { data?: string } | undefined)?.data, "127.0.0.1");
    assert.equal(errorsOf(bus, "dns")[0]?.error, "answer broke");
  });

  it("load balancer: a request it fails to route is answered 502 and an event; the next is served", async () => {
    const bus = new EventBus();
    const upstream = await server(() => 200);
    const target = {
      instanceId: "i-1",
      az: "z-a",
      host: "127.0.0.1",
      port: Number(new URL(upstream.url).port),
      health: "healthy",
    } as Target;
    let calls = 0;
    const targets: TargetSource = {
      routable: () => {
        if (++calls === 1) throw new Error("target group broke");
        return [target];
      },
      get: () => target,
      reportConnectionFailure: () => undefined,
    };
    const lb = new LoadBalancer(targets, bus, { host: "127.0.0.1", port: 0 });
    const url = await lb.listen();
    cleanup.push(() => lb.close());
    const first = await request(url);
    await first.body.dump();
    assert.equal(first.statusCode, 502);
    const second = await request(url);
    await second.body.dump();
    assert.equal(second.statusCode, 200);
    assert.equal(errorsOf(bus, "load-balancer")[0]?.error, "target group broke");
  });

  it("single-instance group: an unopenable log directory is an event, not a constructor that throws", () => {
    const bus = new EventBus();
    const notADirectory = path.join(tempDir(), "logs");
    writeFileSync(notADirectory, "a file\n");
    assert.doesNotThrow(
      () =>
        new SingleInstanceGroup({
          name: "g",
          region: "r1",
          az: "z-a",
          serviceEntry: "service.js",
          logDir: notADirectory,
          volume: {} as never,
          address: {} as never,
          events: bus,
        }),
    );
    assert.match(errorsOf(bus, "single-instance-group")[0]?.error ?? "", /EEXIST|ENOTDIR/);
  });

  it("redis: a restart that fails (its port taken) is an event and is retried until redis-server is back", async () => {
    const bus = new EventBus();
    const port = await findFreePort();
    const redis = new RedisController({
      host: "127.0.0.1",
      port,
      dataDir: tempDir(),
      events: bus,
      password: "test-password",
    });
    cleanup.push(() => redis.stop());
    await redis.start();
    const firstPid = redis.pid;
    assert.ok(firstPid);
    // Another process takes the port as soon as redis-server dies: the restart cannot bind.
    const squatter = net.createServer((socket) => socket.destroy());
    const exited = new Promise<void>((resolve) =>
      bus.subscribe((e) => {
        if (e.type === "redis.exited") resolve();
      }),
    );
    process.kill(firstPid, "SIGKILL");
    await exited;
    await new Promise<void>((r) => squatter.listen(port, "127.0.0.1", r));
    await waitFor("the failed restart reported", () => errorsOf(bus, "redis")[0], 30_000);
    await new Promise<void>((r) => squatter.close(() => r()));
    await waitFor(
      "redis-server back on its port",
      () => (redis.pid !== undefined && redis.pid !== firstPid) || undefined,
      30_000,
    );
    assert.match(errorsOf(bus, "redis")[0]?.retry ?? "", /^the restart of redis-server is retried in/);
  });
});

describe("the runtime's own subscribers are guarded like every controller", { timeout: 300_000 }, () => {
  /**
   * Breaks `processes.json` for real (a folder where the file goes: the atomic rename fails with
   * EISDIR), kills one of the stack's web processes, and checks that the failed record is a
   * process-registry controller.error while the stack still replaces the process; then repairs it.
   */
  async function registryBrokenWhileReplacing(
    stack: LocalStack,
    stateDir: string,
    killOne: () => number,
    replaced: (killedPid: number) => boolean,
  ): Promise<void> {
    const file = path.join(stateDir, processFileName);
    rmSync(file, { force: true });
    mkdirSync(path.join(file, "in-the-way"), { recursive: true });
    const killedPid = killOne();
    try {
      const error = await waitFor(
        "the failed record reported",
        () => errorsOf(stack.events, "process-registry")[0],
        60_000,
      );
      assert.match(error.error, /EISDIR|ENOTEMPTY|EEXIST/);
      assert.equal(error.retry, REGISTRY_RETRY);
      assert.deepEqual(errorsOf(stack.events, "event-bus"), [], "caught by the guard, not by the bus");
      await waitFor(
        "the killed process replaced and serving",
        () => replaced(killedPid) || undefined,
        90_000,
      );
    } finally {
      rmSync(file, { recursive: true, force: true });
    }
  }

  it("load-balanced: a failed process record is an event; the killed instance is replaced all the same", async () => {
    const stateDir = tempDir();
    const resolved = await loadStack(configPath, "dev");
    const stack = createLocalStack({ stack: resolved, stateDir, listenerPort: 0, redisPort: 0, dnsPort: 0 });
    cleanup.push(() => stack.stop("test done"));
    await stack.start();
    let victim = "";
    await registryBrokenWhileReplacing(
      stack,
      stateDir,
      () => {
        const instance = stack.group.list().find((i) => i.state === "in-service");
        assert.ok(instance, "an instance in service");
        victim = instance.instanceId;
        process.kill(instance.pid, "SIGKILL");
        return instance.pid;
      },
      () => {
        const inRotation = stack.targetGroup.inRotation().map((t) => t.instanceId);
        return !inRotation.includes(victim) && inRotation.length >= stack.group.capacity.desired;
      },
    );
    const res = await request(`${stack.loadBalancer.url}/`);
    await res.body.dump();
    assert.equal(res.statusCode, 200, "the stack serves");
  });

  it("ecs: a failed task record is an event; the killed task is replaced all the same", async () => {
    const stateDir = tempDir();
    const resolved = await loadStack(configPath, "dev", { topology: "ecs" });
    const stack = createLocalStack({
      stack: resolved,
      stateDir,
      listenerPort: 0,
      redisPort: 0,
      dnsPort: 0,
    }) as EcsLocalStack;
    cleanup.push(() => stack.stop("test done"));
    await stack.start();
    await registryBrokenWhileReplacing(
      stack,
      stateDir,
      () => {
        const task = [...stack.service.tasks.values()].find((t) => t.health === "healthy" && t.handle);
        assert.ok(task?.handle, "a healthy task");
        process.kill(task.handle.pid, "SIGKILL");
        return task.handle.pid;
      },
      (killedPid) => {
        const tasks = [...stack.service.tasks.values()];
        const healthy = tasks.filter((t) => t.health === "healthy" && !t.stopping);
        return !tasks.some((t) => t.handle?.pid === killedPid) && healthy.length >= stack.service.desired;
      },
    );
    assert.ok(
      stack.events.recent().some((e) => e.type === "task.running"),
      "a replacement task was launched",
    );
  });
});

describe("gray faults: a Redis fault that cannot reach a new instance is an event", () => {
  it("the instance runs without it; the next one launched gets it", () => {
    const bus = new EventBus();
    const sent: { instanceId: string; message: object }[] = [];
    let channelBroken = true;
    const instances = [{ instanceId: "i-1", state: "in-service" }];
    const group = {
      list: () => instances,
      sendTo: (instanceId: string, message: object) => {
        if (channelBroken && instanceId === "i-2") throw new Error("channel closed");
        sent.push({ instanceId, message });
        return true;
      },
    } as unknown as InstanceGroupController;
    const injector = new GrayFaultInjector(group, bus.scoped("r1"));
    injector.redis({ kind: "latency", ms: 200 });
    instances.push({ instanceId: "i-2", state: "in-service" });
    bus.publish({ type: "instance.launched", instanceId: "i-2", az: "z-a", pid: 1, port: 1 }, "r1");
    const [error] = errorsOf(bus, "gray-faults");
    assert.equal(error?.error, "channel closed");
    assert.equal(error?.region, "r1");
    channelBroken = false;
    instances.push({ instanceId: "i-3", state: "in-service" });
    bus.publish({ type: "instance.launched", instanceId: "i-3", az: "z-a", pid: 2, port: 2 }, "r1");
    assert.deepEqual(
      sent.map((s) => s.instanceId),
      ["i-1", "i-3"],
    );
    assert.deepEqual(sent[1]?.message, { type: "fault", redis: { kind: "latency", ms: 200 } });
  });
});
