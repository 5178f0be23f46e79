/**
 * Issue 23: stayup as a tool in someone else's project. This worktree is packed (`npm pack`), the
 * tarball installed into a fresh folder holding a copy of an example (`examples/`, none of which
 * imports stayup), and that folder's `npx stayup` runs its service on real processes: `up`, a
 * kill-instance drill with no failed request, and, for the Node.js service whose ordinary Redis
 * client follows REDIS_URL, a redis-failover drill with none either; `synth` of every topology;
 * `down`. One install serves both examples (the Python one's folder links its node_modules), and the
 * two run side by side (their own folders, state and free ports): one's drills mostly wait while the
 * other's synths compute.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, readdirSync, symlinkSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { DrillReport } from "../src/drills/report.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { type CliResult, repoRoot, tempDir } from "./helpers.ts";

const root = tempDir("stayup-examples-");
const nodeProject = path.join(root, "node-redis");
const pythonProject = path.join(root, "python-stdlib");

/** The project's own `npx stayup` (`--no`: never fetched from a registry; only the installed one). */
function npx(cwd: string, args: string[], timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn("npx", ["--no", "--", "stayup", ...args], { cwd, env: process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const ok = (res: CliResult, what: string) => assert.equal(res.code, 0, `${what}: ${res.stderr}${res.stdout}`);

/** Short steady phases: the drill's verdict, not its figures over time, is what is checked here. */
const drillArgs = ["--json", "--rate", "50", "--warmup-seconds", "0.5", "--cooldown-seconds", "0.5"];

async function drill(cwd: string, name: string): Promise<DrillReport> {
  const res = await npx(cwd, ["drill", name, ...drillArgs], 300_000);
  ok(res, `drill ${name}`);
  return JSON.parse(res.stdout) as DrillReport;
}

async function status(cwd: string): Promise<StackStatus> {
  const res = await npx(cwd, ["status", "--json"], 120_000);
  ok(res, "status");
  return JSON.parse(res.stdout) as StackStatus;
}

/** `synth` of every topology (dev): the description renders for AWS from the project's folder. */
async function synthEveryTopology(cwd: string): Promise<void> {
  // One after the other: each synth is a CPU-bound CDK app; side by side they only compete.
  for (const topology of ["load-balanced", "single-instance", "ecs"]) {
    const args = ["synth", "--env", "dev", "--topology", topology, "--out", `cdk.out-${topology}`];
    ok(await npx(cwd, [...args, "--image-tag", "dev-0000000"], 300_000), `synth --topology ${topology}`);
  }
  for (const topology of ["load-balanced", "single-instance", "ecs"]) {
    assert.ok(
      readdirSync(path.join(cwd, `cdk.out-${topology}`, "dev")).some((f) => f.endsWith(".template.json")),
    );
  }
}

describe(
  "the examples, from a packed stayup installed into their own folders",
  { timeout: 1_500_000, concurrency: true },
  () => {
    before(async () => {
      const packed = await run("npm", ["pack", "--pack-destination", root], repoRoot, 120_000);
      ok(packed, "npm pack");
      const tarball = path.join(root, packed.stdout.trim().split("\n").pop() as string);
      cpSync(path.join(repoRoot, "examples/node-redis"), nodeProject, { recursive: true });
      cpSync(path.join(repoRoot, "examples/python-stdlib"), pythonProject, { recursive: true });
      // The Node.js example's own dependency (ioredis) and stayup, in one install.
      ok(
        await run(
          "npm",
          ["install", tarball, "--prefer-offline", "--no-audit", "--no-fund"],
          nodeProject,
          300_000,
        ),
        "npm install",
      );
      symlinkSync(path.join(nodeProject, "node_modules"), path.join(pythonProject, "node_modules"));
    });

    after(async () => {
      // Whatever a failed test left running.
      await Promise.all([nodeProject, pythonProject].map((cwd) => npx(cwd, ["down"], 120_000)));
    });

    it("node-redis: up, kill-instance and redis-failover with no failed request, counted through its probe, down", async () => {
      ok(await npx(nodeProject, ["up", "--detach", "--port", "0"], 300_000), "up");
      const before_ = await status(nodeProject);
      assert.equal(before_.service?.service, "command");
      assert.equal(before_.service?.consistencyProbePath, "/count");

      const killed = await drill(nodeProject, "kill-instance");
      assert.equal(killed.failed, 0, JSON.stringify(killed.failures));
      assert.equal(killed.verdict.passed, true, JSON.stringify(killed.verdict));
      // Each answer names its instance: STAYUP_INSTANCE_ID reached the service.
      assert.ok(
        Object.keys(killed.servedBy).every((id) => /^i-[0-9a-f]+$/.test(id)),
        JSON.stringify(killed.servedBy),
      );

      // ioredis follows the failover through REDIS_URL (the primary endpoint), no Sentinel in the service.
      const failover = await drill(nodeProject, "redis-failover");
      assert.equal(failover.failed, 0, JSON.stringify(failover.failures));
      assert.equal(failover.notMeasured, undefined, "measured through /count");
      assert.equal(failover.acknowledgedLost, 0);
      assert.equal(failover.counterContinuous, true, JSON.stringify(failover.counterViolations));
      assert.ok((failover.counter.last ?? 0) > 0, "the probe read the count");
      assert.equal(failover.verdict.passed, true, JSON.stringify(failover.verdict));

      ok(await npx(nodeProject, ["down"], 120_000), "down");
      await synthEveryTopology(nodeProject);
    });

    it("python-stdlib: up, kill-instance with no failed request (continuity not measured, and why), down", async () => {
      ok(await npx(pythonProject, ["up", "--detach", "--port", "0"], 300_000), "up");
      const killed = await drill(pythonProject, "kill-instance");
      assert.equal(killed.failed, 0, JSON.stringify(killed.failures));
      assert.equal(killed.verdict.passed, true, JSON.stringify(killed.verdict));
      assert.match(killed.notMeasured?.counterContinuous ?? "", /consistencyProbePath/);
      assert.ok(
        Object.keys(killed.servedBy).every((id) => /^i-[0-9a-f]+$/.test(id)),
        JSON.stringify(killed.servedBy),
      );
      ok(await npx(pythonProject, ["down"], 120_000), "down");
      await synthEveryTopology(pythonProject);
    });
  },
);
