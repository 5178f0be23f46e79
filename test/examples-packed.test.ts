/**
 * Issue 23: stayup as a tool in someone else's project. This repository is packed (`npm pack`), the
 * tarball installed into a fresh folder holding a copy of an example (`examples/`, none of which
 * imports stayup), and that folder's `npx stayup` runs its service on real processes: `up`, a
 * kill-instance drill with no failed request, and, for the Node.js service whose ordinary Redis
 * client follows REDIS_URL, a redis-failover drill with none either; `synth` of every topology
 * (one `synth --topology all`);
 * `down`. The Python example's description is the one `stayup init --command` writes.
 * The install is the run's shared one (test/packaged.ts): the Node.js example's own dependency,
 * ioredis, resolves there too, as stayup depends on it. The two run side by side (their own
 * folders, state and free ports): one's drills mostly wait while the other's synths compute.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { DrillReport } from "../src/drills/report.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { type CliResult, repoRoot } from "./helpers.ts";
import { type Project, projectWithStayup } from "./packaged.ts";

/** An example's files (each example is one flat folder), but those left out. */
function exampleFiles(name: string, leaveOut: string[] = []): Record<string, string> {
  const dir = path.join(repoRoot, "examples", name);
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => !leaveOut.includes(f))
      .map((f) => [f, readFileSync(path.join(dir, f), "utf8")]),
  );
}

let nodeProject: Project;
let pythonProject: Project;
const npx = (project: Project, args: string[], timeoutMs: number): Promise<CliResult> =>
  project.stayup(args, { timeoutMs });

const ok = (res: CliResult, what: string) => assert.equal(res.code, 0, `${what}: ${res.stderr}${res.stdout}`);

/** Short steady phases: the drill's verdict, not its figures over time, is what is checked here. */
const drillArgs = ["--json", "--rate", "50", "--warmup-seconds", "0.5", "--cooldown-seconds", "0.5"];

async function drill(cwd: Project, name: string): Promise<DrillReport> {
  const res = await npx(cwd, ["drill", name, ...drillArgs], 300_000);
  ok(res, `drill ${name}`);
  return JSON.parse(res.stdout) as DrillReport;
}

async function status(cwd: Project): Promise<StackStatus> {
  const res = await npx(cwd, ["status", "--json"], 120_000);
  ok(res, "status");
  return JSON.parse(res.stdout) as StackStatus;
}

/**
 * `synth` of every topology (dev): the description renders for AWS from the project's folder.
 * One process for the three (`--topology all`): a CLI process's first synthesis loads CDK and
 * costs most of it; each topology is still loaded, validated and synthesized on its own.
 */
async function synthEveryTopology(cwd: Project): Promise<void> {
  const args = ["synth", "--env", "dev", "--topology", "all", "--out", "cdk.out-all"];
  const res = await npx(cwd, [...args, "--image-tag", "dev-0000000"], 600_000);
  ok(res, "synth --topology all");
  for (const topology of ["load-balanced", "single-instance", "ecs"]) {
    assert.match(res.stdout, new RegExp(`dev \\(${topology}\\): \\d+ stacks in deployment order`));
    assert.ok(
      readdirSync(path.join(cwd.dir, "cdk.out-all", topology, "dev")).some((f) =>
        f.endsWith(".template.json"),
      ),
      `${topology}: a template`,
    );
  }
}

describe(
  "the examples, from a packed stayup installed into their own folders",
  { timeout: 1_500_000, concurrency: true },
  () => {
    before(async () => {
      nodeProject = await projectWithStayup(exampleFiles("node-redis"));
      pythonProject = await projectWithStayup(exampleFiles("python-stdlib", ["stayup.config.ts"]));
    });

    after(async () => {
      // Whatever a failed test left running.
      await Promise.all([nodeProject, pythonProject].map((p) => p && npx(p, ["down"], 120_000)));
    });

    it("node-redis: up, kill-instance and redis-failover with no failed request, counted through its probe, down", async () => {
      ok(
        await npx(
          nodeProject,
          ["up", "--detach", "--port", "0", "--redis-port", "0", "--dns-port", "0"],
          300_000,
        ),
        "up",
      );
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

    it("python-stdlib: init, up, kill-instance with no failed request (continuity not measured, and why), down", async () => {
      const init = await npx(
        pythonProject,
        ["init", "--command", "python3 server.py", "--health-path", "/health"],
        120_000,
      );
      ok(init, "init");
      assert.match(
        readFileSync(path.join(pythonProject.dir, "stayup.config.ts"), "utf8"),
        /python3 server\.py/,
      );
      ok(
        await npx(
          pythonProject,
          ["up", "--detach", "--port", "0", "--redis-port", "0", "--dns-port", "0"],
          300_000,
        ),
        "up",
      );
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
