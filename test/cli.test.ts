import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { buildProgram } from "../src/cli/main.ts";
import { status } from "../src/cli/commands/status/index.ts";
import { request } from "undici";
import { drills } from "../src/drills/registry.ts";
import { StackClient } from "../src/local/control-plane/client.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import type { DrillReport } from "../src/drills/report.ts";
import { StayupError } from "../src/shared/errors.ts";
import { findFreePort } from "../src/shared/net.ts";
import { configPath, isAlive, runCli, tempDir, upDetached } from "./helpers.ts";

describe("CLI: one folder per command, drills from one registry", () => {
  it("registers every command, and one drill subcommand per registry entry with its own options", async () => {
    const program = await buildProgram();
    const names = program.commands.map((c) => c.name());
    for (const name of ["up", "down", "status", "drill", "synth", "check", "deploy", "destroy", "outputs"])
      assert.ok(names.includes(name), name);
    const drill = program.commands.find((c) => c.name() === "drill");
    assert.deepEqual(
      drill?.commands.map((c) => c.name()),
      drills.map((d) => d.name),
    );
    const kill = drill?.commands.find((c) => c.name() === "kill-instance");
    assert.ok(kill?.options.some((o) => o.long === "--signal"));
    assert.ok(kill?.options.some((o) => o.long === "--rate"));
  });

  it("a command's function runs without argv: status with no stack says how to start one", async () => {
    await assert.rejects(status({ stateDir: tempDir() }), (e: StayupError) => {
      assert.ok(e instanceof StayupError);
      assert.match(`${e.message} ${e.hint}`, /stayup up/);
      return true;
    });
  });

  it("each drill's verdict refuses a run that never recovered, and only for that", () => {
    const report = {
      drill: "x",
      requests: 10,
      failed: 0,
      recoverySeconds: null as number | null,
      counterContinuous: true,
      rate: 10,
      durationSeconds: 1,
      failures: {},
      servedBy: {},
      counter: {},
      writeOutageSeconds: 0,
      acknowledgedLost: 0,
      returnedAfterSeconds: 1,
      ejectedInstances: [],
      replacedInstances: [],
      fault: { kind: "latency" },
      rolledBack: false,
      outageSeconds: 0,
      regionDetectionSeconds: 7,
      ttlSeconds: 1,
      scaleInSeconds: 1,
      launchedInImpairedAz: 0,
      secondaryStartedByAlarm: true,
      failedBack: true,
      secondaryBackToStandby: true,
      counterViolations: [],
      // Marked as every drill must mark its run (module.ts: missingMarks).
      timeline: {
        fault: { seconds: 1, label: "fault", kind: "fault" },
        recoveries: [{ seconds: 2, label: "recovered", kind: "recovery" }],
        steps: [],
      },
    } as unknown as DrillReport;
    for (const d of drills) {
      assert.equal(d.passed(report), false, d.name);
      assert.equal(d.passed({ ...report, recoverySeconds: 1 }), true, d.name);
    }
  });
});

/** Processes whose command line mentions `dir` (a temporary stack's Redis, instances, bundle). */
function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cmdline.includes(dir)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe("stayup drill on a topology the drill does not run on", { timeout: 300_000 }, () => {
  it("with no stack running: fails at once with the reason and the fix, and starts nothing", async () => {
    // The temporary stack would live in TMPDIR (stayup-*) and write its report to the state dir.
    const tmp = tempDir("stayup-drilltopo-tmp-");
    const stateDir = path.join(tempDir(), ".stayup");
    const res = await runCli(
      ["drill", "az-outage", "--topology", "ecs", "--config", configPath, "--state-dir", stateDir],
      { env: { ...process.env, TMPDIR: tmp }, timeoutMs: 120_000 },
    );
    assert.equal(res.code, 1, res.stderr + res.stdout);
    assert.match(res.stderr, /the az-outage drill does not run on topology "ecs"/);
    assert.match(res.stderr, /runs no process in this topology/); // the reason
    assert.match(res.stderr, /stayup drill lose-container-instance --topology ecs/); // the fix
    assert.doesNotMatch(res.stderr, /starting a temporary one/);
    assert.equal(res.stdout, "");
    assert.deepEqual(
      readdirSync(tmp).filter((f) => f.startsWith("stayup-")),
      [],
      "no temporary stack's state",
    );
    assert.equal(existsSync(stateDir), false, "no state, no report");
    assert.deepEqual(processesUsing(tmp), []);
  });

  describe("with a stack running (single-instance)", () => {
    const stateDir = path.join(tempDir(), ".stayup");
    let before_: StackStatus;
    const status = async () => {
      const res = await runCli(["status", "--json", "--state-dir", stateDir]);
      assert.equal(res.code, 0, res.stderr);
      return JSON.parse(res.stdout) as StackStatus;
    };

    before(async () => {
      const up = await runCli(
        [
          "up",
          "--detach",
          "--topology",
          "single-instance",
          "--config",
          configPath,
          "--state-dir",
          stateDir,
          "--port",
          String(await findFreePort()),
          "--redis-port",
          "0",
          "--dns-port",
          "0",
        ],
        { timeoutMs: 150_000 },
      );
      assert.equal(up.code, 0, up.stderr + up.stdout);
      before_ = await status();
    });
    after(async () => {
      const down = await runCli(["down", "--state-dir", stateDir], { timeoutMs: 60_000 });
      assert.equal(down.code, 0, down.stderr);
    });

    it("`stayup status` shows the running stack's topology", async () => {
      assert.equal(before_.topology, "single-instance");
      const res = await runCli(["status", "--state-dir", stateDir]);
      assert.match(res.stdout, /topology single-instance/);
    });

    it("the drill is checked against the running stack's topology, and the stack is left alone", async () => {
      // No --topology: the description says load-balanced, the running stack is single-instance.
      const res = await runCli(
        ["drill", "failing-instance", "--config", configPath, "--state-dir", stateDir],
        {
          timeoutMs: 120_000,
        },
      );
      assert.equal(res.code, 1, res.stderr + res.stdout);
      assert.match(res.stderr, /the failing-instance drill does not run on topology "single-instance"/);
      assert.match(res.stderr, /no load balancer/);
      assert.match(res.stderr, /stayup drill failing-instance --topology load-balanced/);
      // That fix needs another stack (issue 25, item 9): the running one stopped, or another state folder.
      assert.match(
        res.stderr,
        /stop the one running from .* first \(`stayup down`\), or pass another --state-dir/,
      );
      assert.equal(existsSync(path.join(stateDir, "reports")), false, "no report written");
      const after_ = await status();
      assert.deepEqual(
        after_.instances.map((i) => [i.id, i.pid, i.healthy]),
        before_.instances.map((i) => [i.id, i.pid, i.healthy]),
      );
      for (const i of after_.instances) assert.ok(isAlive(i.pid));
    });

    it("--topology against the running stack: the fix leads somewhere (issue 25, item 9)", async () => {
      // lose-container-instance runs only on ecs: dropping --topology would meet "single-instance".
      const ecsOnly = await runCli([
        "drill",
        "lose-container-instance",
        "--topology",
        "ecs",
        "--config",
        configPath,
        "--state-dir",
        stateDir,
      ]);
      assert.equal(ecsOnly.code, 1, ecsOnly.stderr + ecsOnly.stdout);
      assert.match(
        ecsOnly.stderr,
        /--topology ecs was given, but the stack running from .* is topology "single-instance"/,
      );
      assert.doesNotMatch(ecsOnly.stderr, /drop --topology/);
      assert.match(
        ecsOnly.stderr,
        /stop it \(`stayup down`\) to drill a temporary one, or pass another --state-dir/,
      );
      assert.equal(existsSync(path.join(stateDir, "reports")), false, "no report written");
    });

    it("--env against the running stack's environment is refused, naming both, and the stack is left alone (issue 25, item 4's rule)", async () => {
      const res = await runCli([
        "drill",
        "kill-instance",
        "--env",
        "prod",
        "--config",
        configPath,
        "--state-dir",
        stateDir,
      ]);
      assert.equal(res.code, 1, res.stderr + res.stdout);
      assert.match(res.stderr, /--env prod was given, but the stack running from .* is environment "dev"/);
      assert.match(res.stderr, /drop --env to drill the running stack/);
      assert.equal(existsSync(path.join(stateDir, "reports")), false, "no report written");
      const after_ = await status();
      assert.deepEqual(
        after_.instances.map((i) => [i.id, i.pid]),
        before_.instances.map((i) => [i.id, i.pid]),
      );
    });

    it("the dashboard offers only the drills of the running topology and refuses the others", async () => {
      const client = StackClient.find(stateDir);
      assert.ok(client);
      const headers = { authorization: `Bearer ${client.state.token}` };
      const listed = await request(`${client.state.controlUrl}/drills`, { headers });
      assert.equal(listed.statusCode, 200);
      const { available } = (await listed.body.json()) as { available: { name: string }[] };
      assert.deepEqual(
        available.map((d) => d.name),
        drills.filter((d) => d.topologies["single-instance"] === true).map((d) => d.name),
      );
      const started = await request(`${client.state.controlUrl}/drills/slow-instance`, {
        method: "POST",
        headers,
      });
      assert.equal(started.statusCode, 409);
      const body = (await started.body.json()) as { error: string; hint: string };
      assert.match(body.error, /the slow-instance drill does not run on topology "single-instance"/);
      assert.match(body.hint, /--topology load-balanced/);
      const after_ = await status();
      assert.deepEqual(
        after_.instances.map((i) => i.pid),
        before_.instances.map((i) => i.pid),
      );
    });

    it("a --topology that is not the running stack's is refused, not silently ignored", async () => {
      const res = await runCli(
        ["drill", "kill-instance", "--topology", "ecs", "--config", configPath, "--state-dir", stateDir],
        { timeoutMs: 120_000 },
      );
      assert.equal(res.code, 1, res.stderr + res.stdout);
      assert.match(
        res.stderr,
        /--topology ecs was given, but the stack running from .* is topology "single-instance"/,
      );
      // kill-instance runs on single-instance too: there, dropping --topology is a way.
      assert.match(res.stderr, /fix: drop --topology to drill the running stack, or stop it/);
      const after_ = await status();
      assert.deepEqual(
        after_.instances.map((i) => i.pid),
        before_.instances.map((i) => i.pid),
      );
    });
  });
});

describe("`stayup up` prints every event of a drill as a meaningful line", { timeout: 420_000 }, () => {
  const dir = tempDir();
  const stateDir = path.join(dir, ".stayup");
  after(async () => {
    await runCli(["down", "--state-dir", stateDir], { timeoutMs: 60_000 });
  });

  it("failing-instance: the fault, the ejection with its duration, the return; no undefined", async () => {
    await upDetached(stateDir, { cwd: dir });
    const drill = await runCli(
      [
        "drill",
        "failing-instance",
        "--fault-seconds",
        "3",
        // Half a second of steady traffic before and after (1.5 s by default): the lines are the fault's.
        "--warmup-seconds",
        "0.5",
        "--cooldown-seconds",
        "0.5",
        "--state-dir",
        stateDir,
        "--config",
        configPath,
      ],
      { cwd: dir, timeoutMs: 150_000 },
    );
    const down = await runCli(["down", "--state-dir", stateDir], { timeoutMs: 60_000 });
    assert.equal(down.code, 0, down.stderr);
    // What `stayup up` printed: the detached run's output goes to stack.log.
    const log = readFileSync(path.join(stateDir, "stack.log"), "utf8");
    const events = log.split("\n").filter((line) => /^\d\d:\d\d:\d\d\.\d{3} {2}\S/.test(line));
    const context = `drill: ${drill.stdout}${drill.stderr}\nstack.log:\n${log}`;
    assert.ok(events.length > 10, context);
    assert.deepEqual(
      events.filter((line) => /undefined|\[object|NaN/.test(line)),
      [],
      "every event line describes its event",
    );
    for (const line of events) {
      const [, type, detail] = /^\S+ {2}(\S+)\s+(.*)$/.exec(line) ?? [];
      if (type !== "stack.stopped") assert.notEqual(detail?.trim() ?? "", "", `a detail: ${line}`);
    }
    const lineOf = (pattern: RegExp) => events.find((line) => pattern.test(line));
    const fault = lineOf(/fault\.injected +\[eu-west-3\] page errors on (i-[0-9a-f]+): answers 500$/);
    assert.ok(fault, context);
    const victim = /on (i-[0-9a-f]+):/.exec(fault)?.[1] ?? "";
    assert.ok(
      lineOf(
        new RegExp(`target\\.ejected +\\[eu-west-3\\] ${victim} in eu-west-3[abc]: .*; ejected for \\d+ ms`),
      ),
      context,
    );
    assert.ok(
      lineOf(new RegExp(`target\\.returned +\\[eu-west-3\\] ${victim} in eu-west-3[abc]: ejection over`)),
      context,
    );
    assert.ok(
      lineOf(new RegExp(`fault\\.injected +\\[eu-west-3\\] page fault cleared on ${victim}$`)),
      context,
    );
  });
});
