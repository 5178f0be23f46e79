import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { request } from "undici";
import { rollingDeployDrill } from "../src/drills/rolling-deploy.ts";
import { StackClient } from "../src/local/control-plane/client.ts";
import { EventBus } from "../src/local/events/bus.ts";
import { DataVolume } from "../src/local/single-instance/data-volume.ts";
import { SingleInstanceGroup } from "../src/local/single-instance/group.ts";
import { StableAddress } from "../src/local/single-instance/stable-address.ts";
import { bundleWebService } from "../src/web-service/bundle.ts";
import { configPath, isAlive, runCli, tempDir, waitFor } from "./helpers.ts";

async function count(url: string): Promise<{ count: number; instanceId: string }> {
  const res = await request(`${url}/`, { reset: true });
  assert.equal(res.statusCode, 200);
  return (await res.body.json()) as { count: number; instanceId: string };
}

describe("single instance locally (seed 003): real processes, a real redis-server on the volume", () => {
  const bus = new EventBus();
  let dir: string;
  let address: StableAddress;
  let volume: DataVolume;
  let group: SingleInstanceGroup;

  // In the runtime's environment (as a deployer's shell has it): instances must not inherit it.
  const canary = `canary-${process.pid}`;
  const savedAwsSecret = process.env.AWS_SECRET_ACCESS_KEY;

  before(async () => {
    process.env.AWS_SECRET_ACCESS_KEY = canary;
    dir = tempDir();
    // As the single-instance stack builds it: with the CommonJS twin its instances start from.
    const entry = await bundleWebService(path.join(dir, "build"), { codeCache: true });
    volume = new DataVolume(path.join(dir, "volumes", "single"), bus);
    address = new StableAddress({ host: "127.0.0.1", port: 0 }, bus);
    await address.listen();
    group = new SingleInstanceGroup({
      name: "stayup-test-single",
      region: "eu-west-3",
      az: "eu-west-3a",
      serviceEntry: entry,
      logDir: path.join(dir, "logs"),
      volume,
      address,
      events: bus,
      instanceEnvironment: () => ({ LOG_LEVEL: "warn", STAYUP_VERSION: "v-test" }),
      redisPassword: "single-test-password",
    });
    await group.start();
  });
  after(async () => {
    if (savedAwsSecret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = savedAwsSecret;
    await group?.stop();
    await address?.close();
  });

  it("its Redis refuses clients without the password; its web process has an environment from a list", async () => {
    const instance = group.current();
    assert.ok(instance);
    const refused = new Redis({
      port: instance.redisPort,
      lazyConnect: true,
      enableReadyCheck: false, // its INFO would be refused too, and close the connection
      retryStrategy: () => null,
    });
    refused.on("error", () => undefined);
    await refused.connect();
    await assert.rejects(refused.incr("stayup:counter"), /NOAUTH/);
    refused.disconnect();
    const environ = readFileSync(`/proc/${instance.pid}/environ`, "utf8").split("\0");
    assert.ok(environ.some((kv) => kv.startsWith("PATH=")));
    assert.ok(environ.includes("STAYUP_REDIS_PASSWORD=single-test-password"));
    assert.deepEqual(
      environ.filter((kv) => kv.startsWith("AWS_") || kv.includes(canary)),
      [],
      "the runtime's AWS_* stays with it",
    );
    // The page still counts: the web process authenticates with the password it was given.
    assert.ok((await count(address.url)).count >= 1);
  });

  it("SIGKILL: the replacement answers on the same address, the volume follows it, the count continues", async () => {
    const first = group.current();
    assert.ok(first);
    assert.equal(address.associatedWith, first.instanceId);
    assert.equal(volume.attachment?.instanceId, first.instanceId);
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await count(address.url)).count;
    const url = address.url;
    // The first instance compiled its bundle with no cache yet, and wrote one once it listened.
    assert.equal(first.codeCache, "absent");
    await waitFor(
      "the code cache written",
      () => readdirSync(path.join(dir, "build")).some((f) => f.endsWith(".v8-code-cache")) || undefined,
      30_000,
    );

    process.kill(first.pid, "SIGKILL");
    const replacement = await waitFor(
      "a replacement associated with the address",
      () => {
        const now = group.current();
        return now && now.instanceId !== first.instanceId && address.associatedWith === now.instanceId
          ? now
          : undefined;
      },
      60_000,
    );
    assert.equal(address.url, url, "the same stable address");
    assert.equal(replacement.codeCache, "used", "the replacement compiled from the code cache");
    assert.equal(
      volume.attachment?.instanceId,
      replacement.instanceId,
      "the volume moved to the replacement",
    );
    await waitFor("the old instance's Redis gone", () => !isAlive(first.redisPid) || undefined, 10_000);
    const after = await count(address.url);
    assert.equal(after.instanceId, replacement.instanceId);
    assert.equal(after.count, last + 1, "no acknowledged count lost");

    const types = bus.recent().map((e) => e.type);
    const killedAt = types.lastIndexOf("instance.terminated");
    assert.ok(killedAt >= 0);
    const sequence: string[] = types.slice(killedAt - 3);
    for (const t of ["address.disassociated", "volume.detached", "volume.attached", "address.associated"]) {
      assert.ok(sequence.includes(t), `${t} after the kill (got ${sequence.join(", ")})`);
    }
    assert.ok(
      sequence.indexOf("volume.detached") < sequence.lastIndexOf("volume.attached"),
      "detached from the dead instance before attached to the replacement",
    );
  });

  it("stop leaves nothing running and the volume detached", async () => {
    const running = group.current();
    assert.ok(running);
    await group.stop();
    assert.equal(isAlive(running.pid), false);
    assert.equal(isAlive(running.redisPid), false);
    assert.equal(volume.attachment, undefined);
  });
});

/**
 * One single-instance stack (`stayup up --detach --topology single-instance`) for the status, the
 * drills and the rollback below: each reads it or rolls it and leaves one healthy instance serving,
 * which is all the next one needs. One start instead of four (a bundle build and an instance each).
 */
describe("single instance on one running stack (--topology single-instance)", { timeout: 600_000 }, () => {
  const stateDir = path.join(tempDir(), ".stayup");
  const client = () => StackClient.require(stateDir);

  before(async () => {
    const up = await runCli(
      [
        ...["up", "--detach", "--topology", "single-instance", "--config", configPath],
        ...["--state-dir", stateDir, "--port", "0", "--redis-port", "0", "--dns-port", "0"],
      ],
      { timeoutMs: 150_000 },
    );
    assert.equal(up.code, 0, up.stderr + up.stdout);
  });
  after(async () => {
    await runCli(["down", "--state-dir", stateDir], { timeoutMs: 120_000 });
  });

  describe("single instance through the CLI and the control plane (--topology single-instance)", () => {
    it("status shows the address, the instance it points at and the volume's attachment", async () => {
      const status = await client().status();
      const single = status.singleInstance;
      assert.ok(single, "no singleInstance in status");
      const [instance] = status.instances;
      assert.ok(instance);
      assert.equal(status.instances.length, 1);
      assert.equal(single.associatedWith, instance.id);
      assert.equal(single.volume.attachedTo, instance.id);
      assert.equal(`http://${single.address}`, status.listener);
      const answer = await count(status.listener);
      assert.equal(answer.instanceId, instance.id);
    });

    it("drill kill-instance reports the downtime clients saw, the recovery and a continuous counter", async () => {
      const result = await runCli(
        [
          ...["drill", "kill-instance", "--json", "--rate", "100", "--topology", "single-instance"],
          ...["--config", configPath, "--state-dir", stateDir],
        ],
        { timeoutMs: 240_000 },
      );
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout) as {
        drill: string;
        failed: number;
        recoverySeconds: number | null;
        counterContinuous: boolean;
        victim: { id: string };
        replacement: { id: string } | null;
      };
      assert.equal(report.drill, "kill-instance");
      assert.equal(report.counterContinuous, true, "nothing acknowledged lost");
      assert.ok(report.recoverySeconds !== null && report.recoverySeconds > 0, "the address answered again");
      assert.ok(report.replacement && report.replacement.id !== report.victim.id);
      // A single instance cannot avoid downtime: clients saw failures while the address pointed nowhere.
      assert.ok(report.failed > 0);
    });
  });

  describe("single instance: a roll cannot overlap two instances on one volume", () => {
    it("drill rolling-deploy replaces the one instance, reports the downtime and loses no count", async () => {
      const result = await runCli(
        [
          ...["drill", "rolling-deploy", "--json", "--rate", "100", "--topology", "single-instance"],
          ...["--config", configPath, "--state-dir", stateDir],
        ],
        { timeoutMs: 240_000 },
      );
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout) as {
        failed: number;
        instancesReplaced: number;
        rolledBack: boolean;
        counterContinuous: boolean;
        topology: string;
      };
      assert.equal(report.topology, "single-instance");
      assert.equal(report.instancesReplaced, 1);
      assert.equal(report.rolledBack, false);
      assert.equal(report.counterContinuous, true, "nothing acknowledged lost");
      assert.equal(typeof report.failed, "number");
    });
  });

  describe("single instance: its own health check rolls back a version that listens but fails /health", () => {
    it("drill rolling-deploy --broken unhealthy: rolled back, the old version serving again, no count lost", async () => {
      const stack = client();
      const before = await stack.status();
      const serving = (await count(before.listener)) as { version?: string; instanceId: string };
      assert.ok(serving.version);
      // This roll's events only: the stream replays the earlier drills' (a kill has its own unhealthy target).
      const from = new Date().toISOString();
      const events: string[] = [];
      const abort = new AbortController();
      const reading = (async () => {
        for await (const e of stack.events(abort.signal)) if (e.time >= from) events.push(e.type);
      })().catch(() => undefined);
      const report = await rollingDeployDrill(stack, { rate: 50, broken: "unhealthy" });
      abort.abort();
      await reading;
      assert.equal(report.rolledBack, true, JSON.stringify(report));
      assert.match(String(report.reason), /not healthy within/);
      assert.equal(report.instancesReplaced, 0);
      assert.equal(report.counterContinuous, true, "nothing acknowledged lost");
      assert.ok(events.includes("target.unhealthy"), "the new version's health check failed");
      assert.ok(events.includes("roll.rolled-back"));
      const now = await stack.status();
      const [instance] = now.instances;
      assert.ok(instance && now.singleInstance?.associatedWith === instance.id);
      const answer = (await count(now.listener)) as { version?: string; instanceId: string };
      assert.equal(answer.version, serving.version, "the old version serves again");
      assert.equal(answer.instanceId, instance.id);
      assert.notEqual(answer.instanceId, serving.instanceId, "on a new instance (the volume had to move)");
    });
  });
});
