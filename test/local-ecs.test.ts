import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import type { DrillReport } from "../src/drills/report.ts";
import { StackClient } from "../src/local/control-plane/client.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { findFreePort } from "../src/shared/net.ts";
import { cliPath, configPath, isAlive, runCli, tempDir, waitFor } from "./helpers.ts";

type LoseReport = DrillReport & {
  placement: string;
  tasksLost: number;
  tasksBefore: number;
  everyTaskOnLostInstance: boolean;
  containerInstance: { id: string; az: string; taskIds: string[] };
};

/** Seed 004 locally (topology ecs), through the real CLI, on free ports. */
describe("local ECS topology, prod (spread)", { timeout: 420_000 }, () => {
  const dir = tempDir("stayup-ecs-");
  const stateDir = path.join(dir, ".stayup");
  let port: number;
  const common = () => [
    "--config",
    configPath,
    "--state-dir",
    stateDir,
    "--env",
    "prod",
    "--topology",
    "ecs",
  ];
  const status = async () =>
    JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as StackStatus;

  before(async () => {
    port = await findFreePort();
    const redisPort = await findFreePort();
    const up = await runCli(
      ["up", "--detach", "--port", String(port), "--redis-port", String(redisPort), ...common()],
      { cwd: dir, timeoutMs: 180_000 },
    );
    assert.equal(up.code, 0, up.stderr + up.stdout);
  });
  after(async () => {
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("status --json shows container instances with their tasks and free capacity, tasks spread over AZs", async () => {
    const s = await status();
    const ecs = s.ecs;
    assert.ok(ecs, "status has the ecs section");
    assert.equal(ecs.placement, "spread");
    assert.equal(ecs.service.desired, 3);
    const withTasks = ecs.containerInstances.filter((c) => c.tasks.length > 0);
    assert.equal(withTasks.length, 3, "one task per container instance");
    assert.equal(new Set(withTasks.map((c) => c.az)).size, 3, "one task per AZ");
    for (const ci of ecs.containerInstances) {
      assert.equal(ci.free.cpuUnits, ci.registered.cpuUnits - 256 * ci.tasks.length);
      assert.equal(ci.free.memoryMiB, ci.registered.memoryMiB - 256 * ci.tasks.length);
    }
    // The tasks are the region's targets: real processes, healthy in the target group.
    assert.equal(s.instances.length, 3);
    for (const t of s.instances) {
      assert.ok(isAlive(t.pid));
      assert.equal(t.healthy, true);
    }
    const table = await runCli(["status", "--state-dir", stateDir]);
    assert.match(table.stdout, /CONTAINER INSTANCE\s+AZ\s+FREE CPU\s+FREE MEMORY\s+TASKS/);
  });

  it("serves through the load balancer from the tasks, counting in Redis", async () => {
    // The stack itself, not the CLI's printing of it (the test above reads that): no CLI process.
    const tasks = new Set((await StackClient.require(stateDir).status()).instances.map((i) => i.id));
    const counts: number[] = [];
    for (let n = 0; n < 6; n++) {
      const res = await request(`http://127.0.0.1:${port}/`);
      assert.equal(res.statusCode, 200);
      const body = (await res.body.json()) as { count: number; instanceId: string };
      assert.ok(tasks.has(body.instanceId), `${body.instanceId} is a task`);
      counts.push(body.count);
    }
    for (let n = 1; n < counts.length; n++) assert.ok((counts[n] ?? 0) > (counts[n - 1] ?? 0));
  });

  it("drill lose-container-instance: one task lost, 0 failed, the count continues, desired tasks back", async () => {
    const drill = await runCli(["drill", "lose-container-instance", "--json", "--rate", "100", ...common()], {
      timeoutMs: 180_000,
    });
    assert.equal(drill.code, 0, drill.stderr + drill.stdout);
    const report = JSON.parse(drill.stdout) as LoseReport;
    assert.equal(report.drill, "lose-container-instance");
    assert.equal(report.placement, "spread");
    assert.equal(report.tasksLost, 1);
    assert.equal(report.everyTaskOnLostInstance, false);
    assert.equal(report.failed, 0);
    assert.equal(report.counterContinuous, true);
    assert.ok((report.counter.last ?? 0) > (report.counter.first ?? 0));
    assert.notEqual(report.recoverySeconds, null);
    // What `status --json` prints, without a CLI process per look (it looks every 50 ms).
    const client = StackClient.require(stateDir);
    const s = await waitFor("3 healthy tasks", async () => {
      const current = await client.status();
      return current.instances.filter((i) => i.healthy).length === 3 ? current : undefined;
    });
    const ids = new Set(s.ecs?.containerInstances.map((c) => c.id));
    assert.equal(ids.has(report.containerInstance.id), false, "the lost container instance is gone");
    for (const taskId of report.containerInstance.taskIds) {
      assert.equal(
        s.instances.some((i) => i.id === taskId),
        false,
        "its task is no longer a target",
      );
    }
  });

  it("drill lose-container-instance interrupted (SIGINT) right after the loss: exits saying so with a partial report, the service whole again", async () => {
    const client = StackClient.require(stateDir);
    await waitFor(
      "3 healthy tasks before",
      async () =>
        (await client.status()).instances.filter((i) => i.healthy).length === 3 ? true : undefined,
      60_000,
    );
    const run = spawn(
      process.execPath,
      [cliPath, "drill", "lose-container-instance", "--rate", "50", "--warmup-seconds", "0.5", ...common()],
      { cwd: dir },
    );
    let stderr = "";
    run.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => run.once("close", (code) => resolve(code)));
    try {
      const lost = await waitFor(
        "the container instance lost",
        () => {
          if (run.exitCode !== null) throw new Error(`ended first: ${stderr}`);
          return /losing container instance (i-\w+)/.exec(stderr)?.[1];
        },
        60_000,
      );
      run.kill("SIGINT");
      const code = await exited;
      assert.equal(code, 130, `128 + SIGINT's number, as a shell reports it: ${stderr}`);
      assert.match(stderr, /drill lose-container-instance interrupted \(SIGINT\)/);
      const json = /partial report: \S+ \(JSON: (\S+)\)/.exec(stderr)?.[1];
      assert.ok(json && existsSync(json), `a partial report: ${stderr}`);
      const report = JSON.parse(readFileSync(json, "utf8")) as DrillReport;
      assert.equal((report.interrupted as { reason: string }).reason, "SIGINT");
      assert.equal(report.verdict.passed, false);
      // As the drill found it: 3 healthy tasks, none on the lost container instance.
      const s = await waitFor(
        "3 healthy tasks, the lost container instance gone",
        async () => {
          const current = await client.status();
          return current.instances.filter((i) => i.healthy).length === 3 &&
            current.ecs?.containerInstances.every((c) => c.id !== lost)
            ? current
            : undefined;
        },
        60_000,
      );
      assert.deepEqual(s.faults ?? [], []);
    } finally {
      run.kill("SIGKILL");
    }
  });
});

describe("local ECS topology, dev (binpack)", { timeout: 300_000 }, () => {
  it("drill lose-container-instance on a temporary stack: every task was on the lost instance, then the service recovers", async () => {
    const dir = tempDir("stayup-ecs-dev-");
    const drill = await runCli(
      [
        "drill",
        "lose-container-instance",
        "--json",
        "--rate",
        "100",
        "--config",
        configPath,
        "--state-dir",
        path.join(dir, ".stayup"),
        "--env",
        "dev",
        "--topology",
        "ecs",
      ],
      { cwd: dir, timeoutMs: 240_000 },
    );
    assert.ok(drill.stdout.trim().startsWith("{"), `no report: ${drill.stderr}`);
    const report = JSON.parse(drill.stdout) as LoseReport;
    assert.equal(report.placement, "binpack");
    assert.equal(report.tasksBefore, 2);
    assert.equal(report.tasksLost, 2);
    assert.equal(report.everyTaskOnLostInstance, true);
    assert.deepEqual(report.containerInstance.taskIds.length, 2);
    assert.notEqual(report.recoverySeconds, null, "the scheduler placed the tasks again");
    assert.equal(report.counterContinuous, true);
  });
});
