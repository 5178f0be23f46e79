import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildProgram } from "../src/cli/main.ts";
import { status } from "../src/cli/commands/status/index.ts";
import { drills } from "../src/drills/registry.ts";
import type { DrillReport } from "../src/drills/report.ts";
import { StayupError } from "../src/shared/errors.ts";
import { tempDir } from "./helpers.ts";

describe("CLI: one folder per command, drills from one registry", () => {
  it("registers every command, and one drill subcommand per registry entry with its own options", () => {
    const program = buildProgram();
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
      scaleInSeconds: 1,
      launchedInImpairedAz: 0,
      secondaryStartedByAlarm: true,
      failedBack: true,
      secondaryBackToStandby: true,
      counterViolations: [],
    } as unknown as DrillReport;
    for (const d of drills) {
      assert.equal(d.passed(report), false, d.name);
      assert.equal(d.passed({ ...report, recoverySeconds: 1 }), true, d.name);
    }
  });
});
