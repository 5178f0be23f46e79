import type { Command } from "commander";
import { drillDefaults } from "../../../drills/harness.ts";
import {
  assertRunsOn,
  type DrillModule,
  topologiesLine,
  topologySupportHelp,
} from "../../../drills/module.ts";
import { drills } from "../../../drills/registry.ts";
import { type DrillReport, formatReport } from "../../../drills/report.ts";
import { runDrillAndReport } from "../../../drills/runner.ts";
import { StackClient } from "../../../local/control-plane/client.ts";
import type { StackStatus } from "../../../local/runtime.ts";
import { StayupError } from "../../../shared/errors.ts";
import { loadStack, type ResolvedStack, type Topology } from "../../../stack/index.ts";
import { privateUmask } from "../../../shared/private-file.ts";
import { configOption, envOption, type LocalOptions, stateDirOption, topologyOption } from "../../options.ts";
import { parsePositive } from "../../parse.ts";
import { StackSession } from "../../stack-session.ts";

export type DrillCliOptions = LocalOptions & { rate: number; json?: boolean; report?: string } & Record<
    string,
    unknown
  >;

/** The topology of a running stack (one started before `status` had the field: inferred from its parts). */
export const runningTopology = (status: StackStatus): Topology =>
  status.topology ?? (status.ecs ? "ecs" : status.singleInstance ? "single-instance" : "load-balanced");

/**
 * Runs on the stack running from `stateDir`, or on a temporary one on free ports if none runs. The
 * drill is checked against the topology it would meet (the running stack's, else the description's)
 * before anything starts.
 */
async function withStack<T>(
  drill: DrillModule,
  opts: LocalOptions,
  resolved: ResolvedStack,
  quiet: boolean,
  run: (client: StackClient) => Promise<T>,
): Promise<T> {
  const running = StackClient.find(opts.stateDir);
  if (running) {
    const topology = runningTopology(await running.status());
    if (opts.topology !== undefined && opts.topology !== topology) {
      throw new StayupError(
        `--topology ${opts.topology} was given, but the stack running from ${opts.stateDir} is topology "${topology}"`,
        "drop --topology to drill the running stack, or stop it (`stayup down`) to drill a temporary one",
      );
    }
    assertRunsOn(drill, topology);
    return run(running);
  }
  assertRunsOn(drill, resolved.topology);
  if (!quiet) console.error("no stack running here; starting a temporary one for this drill (free ports)...");
  const session = await StackSession.temporary(resolved);
  try {
    return await run(session.client);
  } finally {
    await session.stop();
  }
}

/** `stayup drill <name>`: runs one drill, prints its report; exit code 1 if it did not pass. */
export async function runDrill(drill: DrillModule, opts: DrillCliOptions): Promise<DrillReport> {
  // Its reports under the state folder, and a temporary stack's files, are the user's alone.
  process.umask(privateUmask);
  const stack = await loadStack(opts.config, opts.env, { topology: opts.topology });
  const json = Boolean(opts.json);
  // The same run as a drill started from the dashboard (the control plane's DrillRunner).
  const { report, files } = await withStack(drill, opts, stack, json, (client) =>
    runDrillAndReport(drill, {
      client,
      stack,
      stateDir: opts.stateDir,
      rate: opts.rate,
      onProgress: json ? undefined : (m) => console.error(`  … ${m}`),
      options: opts,
      reportHtml: opts.report,
    }),
  );
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report, drill.details(report)));
  console.error(`report: ${files.html} (JSON: ${files.json})`);
  if (!report.verdict.passed) process.exitCode = 1;
  return report;
}

export function register(program: Command): void {
  const drill = program.command("drill").description("break the stack on purpose and report what users saw");
  for (const module of drills) {
    const command = drill
      .command(module.name)
      .description(`${module.description} ${topologiesLine(module)}`)
      .addHelpText("after", `\n${topologySupportHelp(module)}`)
      .addOption(configOption())
      .addOption(envOption())
      .addOption(topologyOption())
      .addOption(stateDirOption())
      .option("-r, --rate <n>", "requests per second during the drill", parsePositive, drillDefaults.rate)
      .option("--json", "print the report as JSON")
      .option(
        "--report <file.html>",
        "write the HTML report here, its JSON next to it (default: <state-dir>/reports/)",
      );
    for (const option of module.options?.() ?? []) command.addOption(option);
    command.action(async (opts: DrillCliOptions) => {
      await runDrill(module, opts);
    });
  }
}
