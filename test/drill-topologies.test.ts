import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { runningTopology } from "../src/cli/commands/drill/index.ts";
import { buildProgram } from "../src/cli/main.ts";
import { assertRunsOn, supportedTopologies, topologiesLine } from "../src/drills/module.ts";
import { drillTopologyTable, drills } from "../src/drills/registry.ts";
import type { DrillReport } from "../src/drills/report.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { StayupError } from "../src/shared/errors.ts";
import { findFreePort } from "../src/shared/net.ts";
import { topologies } from "../src/stack/index.ts";
import { configPath, repoRoot, runCli, tempDir } from "./helpers.ts";

/** The cells of a markdown table's rows (separator row dropped, backticks and padding removed). */
function tableCells(markdown: string): string[][] {
  return markdown
    .split("\n")
    .filter((line) => line.trim().startsWith("|"))
    .map((line) =>
      line
        .trim()
        .slice(1, -1)
        .split("|")
        .map((cell) => cell.trim().replaceAll("`", "")),
    )
    .filter((cells) => !cells.every((c) => /^:?-+:?$/.test(c)));
}

/** docs/drills.md's drills × topologies table: the one after its marker comment. */
function readmeTable(): string {
  const readme = readFileSync(path.join(repoRoot, "docs/drills.md"), "utf8");
  const marker = readme.indexOf("<!-- drills × topologies:");
  assert.ok(marker >= 0, "docs/drills.md has the drills × topologies marker");
  const lines = readme.slice(marker).split("\n").slice(1);
  const start = lines.findIndex((l) => l.startsWith("|"));
  const rest = lines.slice(start);
  const end = rest.findIndex((l) => !l.startsWith("|"));
  return rest.slice(0, end === -1 ? undefined : end).join("\n");
}

describe("drills × topologies: every drill says what it does on every topology", () => {
  it("every drill declares every topology, and nothing else", () => {
    for (const drill of drills) {
      assert.deepEqual(Object.keys(drill.topologies).sort(), [...topologies].sort(), drill.name);
    }
  });

  it("each unsupported entry gives a reason and what to run instead; each drill runs somewhere", () => {
    for (const drill of drills) {
      assert.ok(supportedTopologies(drill).length > 0, `${drill.name} runs on no topology`);
      for (const topology of topologies) {
        const support = drill.topologies[topology];
        if (support === true) continue;
        assert.ok(support.unsupported.trim().length > 0, `${drill.name} on ${topology}: no reason`);
        assert.ok(support.instead.trim().length > 0, `${drill.name} on ${topology}: nothing instead`);
      }
    }
  });

  it("every topology has at least one drill", () => {
    for (const topology of topologies) {
      assert.ok(
        drills.some((d) => d.topologies[topology] === true),
        `no drill runs on ${topology}`,
      );
    }
  });

  it("assertRunsOn refuses exactly the undeclared pairs, naming drill, topology, reason and fix", () => {
    let refused = 0;
    for (const drill of drills) {
      for (const topology of topologies) {
        const support = drill.topologies[topology];
        if (support === true) {
          assert.doesNotThrow(() => assertRunsOn(drill, topology), `${drill.name} on ${topology}`);
          continue;
        }
        refused++;
        assert.throws(
          () => assertRunsOn(drill, topology),
          (e: unknown) => {
            assert.ok(e instanceof StayupError);
            assert.ok(e.message.includes(drill.name), e.message);
            assert.ok(e.message.includes(`"${topology}"`), e.message);
            assert.ok(e.message.includes(support.unsupported), e.message);
            assert.ok(e.hint?.includes(support.instead), e.hint);
            return true;
          },
        );
      }
    }
    assert.ok(refused > 0, "some pair is unsupported (the az-outage drill on ecs, say)");
  });

  it("the pairs the issue names are refused: az-outage on ecs, region-outage and the gray faults on one region or one instance", () => {
    const byName = (name: string) => {
      const drill = drills.find((d) => d.name === name);
      assert.ok(drill, name);
      return drill;
    };
    assert.notEqual(byName("az-outage").topologies.ecs, true);
    assert.notEqual(byName("region-outage").topologies["single-instance"], true);
    assert.notEqual(byName("region-outage").topologies.ecs, true);
    assert.notEqual(byName("failing-instance").topologies["single-instance"], true);
    assert.notEqual(byName("slow-instance").topologies["single-instance"], true);
    assert.notEqual(byName("cpu-spike").topologies["single-instance"], true);
    assert.notEqual(byName("lose-container-instance").topologies["load-balanced"], true);
    assert.equal(byName("kill-instance").topologies.ecs, true);
    assert.equal(byName("kill-instance").topologies["single-instance"], true);
  });

  it("`stayup drill --help` and each drill's --help say where it runs, from the declaration", async () => {
    const drill = (await buildProgram()).commands.find((c) => c.name() === "drill");
    assert.ok(drill);
    for (const module of drills) {
      const command = drill.commands.find((c) => c.name() === module.name);
      assert.ok(command, module.name);
      assert.ok(command.description().endsWith(topologiesLine(module)), command.description());
      let help = "";
      command.configureOutput({ writeOut: (s) => (help += s) });
      command.outputHelp();
      for (const topology of topologies) {
        const support = module.topologies[topology];
        const line = help.split("\n").find((l) => l.trim().startsWith(`${topology}:`));
        assert.ok(line, `${module.name} --help has a line for ${topology}`);
        if (support === true) assert.match(line, /runs here/);
        else {
          assert.ok(line.includes(support.unsupported), line);
          assert.ok(line.includes(support.instead), line);
        }
      }
    }
  });

  it("docs/drills.md's table is the registry's (drillTopologyTable; npm run docs writes it)", () => {
    const expected = drillTopologyTable();
    assert.deepEqual(
      tableCells(readmeTable()),
      tableCells(expected),
      `docs/drills.md's drills × topologies table differs from the drills' declarations (npm run docs rewrites it); it should be:\n${expected}`,
    );
    // The table covers every drill and every topology.
    const [header, ...rows] = tableCells(expected);
    assert.deepEqual(header?.slice(1), [...topologies]);
    assert.deepEqual(
      rows.map((r) => r[0]),
      drills.map((d) => d.name),
    );
  });

  it("a running stack's topology: its status field, or from its parts for a stack started before it", () => {
    const base = { name: "x", environment: "dev" } as unknown as StackStatus;
    assert.equal(runningTopology({ ...base, topology: "ecs" }), "ecs");
    const old = (extra: Partial<StackStatus>) =>
      ({ ...base, topology: undefined, ...extra }) as unknown as StackStatus;
    assert.equal(runningTopology(old({})), "load-balanced");
    assert.equal(runningTopology(old({ ecs: {} as StackStatus["ecs"] })), "ecs");
    assert.equal(
      runningTopology(old({ singleInstance: {} as StackStatus["singleInstance"] })),
      "single-instance",
    );
  });
});

/**
 * The pairs declared supported on ecs that no other test runs there: kill-instance kills one of the
 * service's tasks (the scheduler replaces it), redis-failover fails over the Redis the tasks share.
 */
describe("drills declared supported on ecs run there for real", { timeout: 600_000 }, () => {
  const stateDir = path.join(tempDir(), ".stayup");
  const drill = async (name: string) => {
    const res = await runCli(["drill", name, "--json", "--rate", "100", "--state-dir", stateDir], {
      timeoutMs: 240_000,
    });
    assert.ok(res.stdout, res.stderr);
    return { code: res.code, stderr: res.stderr, report: JSON.parse(res.stdout) as DrillReport };
  };

  before(async () => {
    const up = await runCli(
      [
        ...["up", "--detach", "--topology", "ecs", "--config", configPath, "--state-dir", stateDir],
        ...["--port", String(await findFreePort()), "--redis-port", "0", "--dns-port", "0"],
      ],
      { timeoutMs: 240_000 },
    );
    assert.equal(up.code, 0, up.stderr + up.stdout);
  });
  after(async () => {
    const down = await runCli(["down", "--state-dir", stateDir], { timeoutMs: 120_000 });
    assert.equal(down.code, 0, down.stderr);
  });

  it("kill-instance on ecs: a task is killed and a new task takes its place, 0 failed", async () => {
    const status = JSON.parse(
      (await runCli(["status", "--json", "--state-dir", stateDir])).stdout,
    ) as StackStatus;
    assert.equal(status.topology, "ecs");
    const tasks = new Set(status.ecs?.containerInstances.flatMap((c) => c.tasks.map((t) => t.id)));
    const { code, stderr, report } = await drill("kill-instance");
    assert.equal(code, 0, stderr);
    const victim = report.victim as { id: string };
    const replacement = report.replacement as { id: string } | null;
    assert.ok(tasks.has(victim.id), `the victim ${victim.id} is one of the service's tasks`);
    assert.ok(replacement && !tasks.has(replacement.id), "a new task replaced it");
    assert.equal(report.failed, 0, JSON.stringify(report.failures));
    assert.equal(report.counterContinuous, true);
  });

  it("redis-failover on ecs: the tasks' Redis fails over with no acknowledged count lost", async () => {
    const { code, stderr, report } = await drill("redis-failover");
    assert.equal(code, 0, stderr);
    assert.notEqual(report.newPrimary, null);
    assert.equal(report.acknowledgedLost, 0);
    assert.equal(report.counterContinuous, true);
  });
});
