import { type Command, InvalidArgumentError } from "commander";
import { type InterruptSignal, interruptSignals, trapInterruptSignals } from "../../interrupt-signals.ts";
import { DrillInterrupted, DrillInterruption, drillDefaults } from "../../../drills/harness.ts";
import {
  assertRunsOn,
  assertRunsOnService,
  concludeVerdict,
  type DrillContext,
  type DrillModule,
  topologiesLine,
  topologySupportHelp,
} from "../../../drills/module.ts";
import { drills } from "../../../drills/registry.ts";
import { type DrillReport, formatReport } from "../../../drills/report.ts";
import { saveReport } from "../../../drills/report-files.ts";
import { StackClient } from "../../../local/control-plane/client.ts";
import type { FaultInForce } from "../../../local/faults/registry.ts";
import type { StackStatus } from "../../../local/runtime.ts";
import { StayupError } from "../../../shared/errors.ts";
import { sleep } from "../../../shared/net.ts";
import { serviceTraffic } from "../../../stack/derived.ts";
import type { ResolvedStack, Topology } from "../../../stack/schema.ts";
import { privateUmask } from "../../../shared/private-file.ts";
import { configOption, envOption, type LocalOptions, stateDirOption, topologyOption } from "../../options.ts";
import { parseNonNegative, parsePositive } from "../../parse.ts";
import { killTemporaryStack, StackSession } from "../../stack-session.ts";

export type DrillCliOptions = LocalOptions & {
  rate: number;
  json?: boolean;
  report?: string;
  warmupSeconds?: number;
  path?: string;
  cooldownSeconds?: number;
} & Record<string, unknown>;

/** The topology of a running stack (one started before `status` had the field: inferred from its parts). */
export const runningTopology = (status: StackStatus): Topology =>
  status.topology ?? (status.ecs ? "ecs" : status.singleInstance ? "single-instance" : "load-balanced");

/** The state folder of the temporary stack this drill runs on, while it runs (or starts). */
interface TemporaryStackHolder {
  stateDir?: string;
}

/**
 * While a drill runs, SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) interrupt it: its
 * waits stop, its faults are cleared, its partial report written, and a temporary stack stopped. A
 * second signal exits at once, killing a temporary stack's processes first (a stack the drill did
 * not start is left for `stayup faults clear`). Returns what removes the handlers.
 */
function trapInterruptions(interruption: DrillInterruption, temporary: TemporaryStackHolder): () => void {
  return trapInterruptSignals(
    (signal) => {
      console.error(`\ninterrupted (${signal}): stopping the drill and clearing the faults it injected...`);
      interruption.interrupt(signal);
    },
    (signal) => {
      if (temporary.stateDir) {
        const killed = killTemporaryStack(temporary.stateDir);
        console.error(`\n${signal} again: killed the temporary stack's ${killed} process(es); exiting now`);
      } else {
        console.error(
          `\n${signal} again: exiting now without waiting; the stack clears the faults of a drill gone and rolls back a roll whose requester is gone (see \`stayup status\`; \`stayup faults clear\` clears what is left)`,
        );
      }
    },
  );
}

/** What a drill's run gave: its report, or, interrupted, its partial report (if it had started). */
interface DrillOutcome {
  report?: DrillReport;
  interrupted?: string;
  /** The faults the stack restored when the drill let go of its lease (interrupted: those it left). */
  cleared: FaultInForce[];
  /** Interrupted: what the drill started that no lease restores (a roll), undone, or why not. */
  undone?: string[];
  notUndone?: string[];
}

/**
 * Runs the drill on `client` with its faults held under a lease: when the drill ends, however it
 * ends (interrupted included), the stack restores whatever it left; if this process dies, the
 * stack does the same when the lease's connection closes.
 */
async function runLeased(
  drill: DrillModule,
  client: StackClient,
  context: Omit<DrillContext<Record<string, unknown>>, "client">,
  interruption: DrillInterruption,
  temporary: boolean,
): Promise<DrillOutcome> {
  const lease = await interruption.race(client.openFaultLease(drill.name));
  let outcome: Omit<DrillOutcome, "cleared">;
  try {
    outcome = { report: await interruption.race(drill.run({ ...context, client: client.withLease(lease) })) };
  } catch (error) {
    if (!(error instanceof DrillInterrupted)) {
      await lease.release().catch(() => undefined);
      throw error;
    }
    const report = await interruption.run?.interruptedReport(drill.name, error.reason);
    const said = report?.interrupted as { undone?: string[]; notUndone?: string[] } | undefined;
    outcome = { interrupted: error.reason, report, undone: said?.undone, notUndone: said?.notUndone };
  }
  const cleared = await lease.release();
  // A temporary stack is stopped next: nothing to wait for.
  if (outcome.interrupted && !temporary) await waitUntilWhole(client, context.onProgress);
  return { ...outcome, cleared };
}

/**
 * After an interrupted drill: waits (30 s at most) until the stack is as the drill found it as far
 * as the stack restores it by itself: every Redis node running, no region down, no fault in force.
 */
async function waitUntilWhole(client: StackClient, onProgress?: (message: string) => void): Promise<void> {
  const deadline = Date.now() + 30_000;
  let said = "";
  while (Date.now() < deadline) {
    const status = await client.status();
    const missing = [
      ...(status.redis.nodes ?? [])
        .filter((n) => !n.pid)
        .map((n) => `Redis node ${n.name} in ${n.az} restarted`),
      ...status.regions.filter((r) => r.down).map((r) => `region ${r.name} back`),
      ...(status.faults ?? []).map((f) => `${f.description} cleared`),
    ];
    if (missing.length === 0) return;
    const line = `waiting for: ${missing.join(", ")}`;
    if (line !== said) onProgress?.(line);
    said = line;
    await sleep(200);
  }
  console.error("the stack is not whole yet: see `stayup status` (and `stayup faults clear`)");
}

/**
 * Runs on the stack running from `stateDir`, or on a temporary one on free ports if none runs. The
 * drill is checked against the topology it would meet (the running stack's, else the description's)
 * before anything starts. A temporary stack is stopped however the drill ends.
 */
async function withStack(
  drill: DrillModule,
  opts: LocalOptions,
  resolved: ResolvedStack,
  quiet: boolean,
  interruption: DrillInterruption,
  temporary: TemporaryStackHolder,
  envGiven: boolean,
  run: (client: StackClient, temporary: boolean) => Promise<DrillOutcome>,
): Promise<DrillOutcome> {
  const running = StackClient.find(opts.stateDir);
  if (running) {
    const status = await running.status();
    const topology = runningTopology(status);
    if (opts.topology !== undefined && opts.topology !== topology) {
      // Dropping --topology helps only if the drill runs on the running stack's topology.
      const drop =
        drill.topologies[topology] === true ? "drop --topology to drill the running stack, or " : "";
      throw new StayupError(
        `--topology ${opts.topology} was given, but the stack running from ${opts.stateDir} is topology "${topology}"`,
        `${drop}stop it (\`stayup down\`) to drill a temporary one, or pass another --state-dir (the drill then starts a temporary stack beside it)`,
      );
    }
    // Asked for another environment than the one running (issue 25 item 4's rule for `up`):
    // said, not drilled on the running one as if it were that environment.
    if (envGiven && opts.env !== status.environment) {
      throw new StayupError(
        `--env ${opts.env} was given, but the stack running from ${opts.stateDir} is environment "${status.environment}"`,
        `drop --env to drill the running stack, or stop it (\`stayup down\`) to drill a temporary one, or pass another --state-dir (the drill then starts a temporary stack beside it)`,
      );
    }
    assertRunsOn(drill, topology, { stateDir: opts.stateDir });
    assertRunsOnService(drill, status.service?.service ?? "counter");
    return run(running, false);
  }
  assertRunsOn(drill, resolved.topology);
  assertRunsOnService(drill, serviceTraffic(resolved).service);
  if (!quiet) console.error("no stack running here; starting a temporary one for this drill (free ports)...");
  // A signal while it starts is acted on once it has started: then it is stopped, in order.
  const session = await StackSession.temporary(resolved, undefined, (stateDir) => {
    temporary.stateDir = stateDir;
  });
  try {
    if (interruption.interrupted) return { interrupted: interruption.reason, cleared: [] };
    return await run(session.client, true);
  } finally {
    if (interruption.interrupted) console.error("stopping the temporary stack...");
    await session.stop();
    temporary.stateDir = undefined;
  }
}

/** `stayup drill <name>`: runs one drill, prints its report; exit code 1 if it did not pass. */
export async function runDrill(
  drill: DrillModule,
  opts: DrillCliOptions,
  envGiven = false,
): Promise<DrillReport | undefined> {
  // Its reports under the state folder, and a temporary stack's files, are the user's alone.
  process.umask(privateUmask);
  // Loaded here, not at the top: `up` imports this module, and the runtime it runs for `up
  // --detach` never loads the description's validator (issue 25, item 12).
  const { loadStack, nothingStarted } = await import("../../../stack/index.ts");
  const stack = await loadStack(opts.config, opts.env, { topology: opts.topology }).catch(nothingStarted);
  const json = Boolean(opts.json);
  const interruption = new DrillInterruption();
  const temporary: TemporaryStackHolder = {};
  const untrap = trapInterruptions(interruption, temporary);
  const onProgress = json ? undefined : (m: string) => console.error(`  … ${m}`);
  let outcome: DrillOutcome;
  try {
    outcome = await withStack(
      drill,
      opts,
      stack,
      json,
      interruption,
      temporary,
      envGiven,
      (client, isTemporary) =>
        runLeased(
          drill,
          client,
          {
            stack,
            rate: opts.rate,
            onProgress,
            harness: {
              interruption,
              ...(opts.warmupSeconds === undefined ? {} : { warmupMs: opts.warmupSeconds * 1000 }),
              ...(opts.cooldownSeconds === undefined ? {} : { cooldownMs: opts.cooldownSeconds * 1000 }),
              ...(opts.path === undefined ? {} : { trafficPath: opts.path }),
            },
            options: opts,
          },
          interruption,
          isTemporary,
        ),
    );
  } catch (error) {
    // Interrupted before the drill could start (while the temporary stack started, say).
    if (!(error instanceof DrillInterrupted)) throw error;
    outcome = { interrupted: error.reason, cleared: [] };
  } finally {
    untrap();
  }
  if (outcome.interrupted) return interrupted(drill, opts, outcome);
  const report = concludeVerdict(drill, outcome.report as DrillReport);
  const files = saveReport(report, opts.stateDir, opts.report);
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report, drill.details(report)));
  console.error(`report: ${files.html} (JSON: ${files.json})`);
  if (!report.verdict.passed) process.exitCode = 1;
  return report;
}

/** An interrupted drill: its partial report written, what it cleared said, and an exit at once. */
function interrupted(drill: DrillModule, opts: DrillCliOptions, outcome: DrillOutcome): never {
  const signal = outcome.interrupted as InterruptSignal;
  const report = outcome.report;
  if (report) {
    const files = saveReport(report, opts.stateDir, opts.report);
    console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
    console.error(`partial report: ${files.html} (JSON: ${files.json})`);
  }
  const cleared = outcome.cleared.map((f) => f.description);
  const undone = (outcome.undone ?? []).map((what) => `; ${what}`).join("");
  const notUndone = (outcome.notUndone ?? [])
    .map((what) => `; NOT undone: ${what} (see \`stayup status\`)`)
    .join("");
  console.error(
    `drill ${drill.name} interrupted (${signal}): ${cleared.length > 0 ? `cleared what it left: ${cleared.join("; ")}` : "it left no fault in force"}${undone}${notUndone}`,
  );
  // Its traffic and the stack's event stream would keep the process alive: exit now, as a shell
  // reports a command a signal ended.
  process.exit(interruptSignals[signal] ?? 1);
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
        "--path <path>",
        "where the drill's traffic goes (default: webService.trafficPath, else /)",
        parseTrafficPath,
      )
      .option(
        "--warmup-seconds <n>",
        "steady traffic before the fault",
        parseNonNegative,
        drillDefaults.warmupMs / 1000,
      )
      .option(
        "--cooldown-seconds <n>",
        "steady traffic after recovery, before the report",
        parseNonNegative,
        drillDefaults.cooldownMs / 1000,
      )
      .option(
        "--report <file.html>",
        "write the HTML report here, its JSON next to it (default: <state-dir>/reports/)",
      );
    for (const option of module.options?.() ?? []) command.addOption(option);
    command.action(async (opts: DrillCliOptions, self: Command) => {
      await runDrill(module, opts, self.getOptionValueSource("env") === "cli");
    });
  }
}

/** `--path`: a request path as webService.trafficPath takes it. */
function parseTrafficPath(value: string): string {
  if (!/^\/[\x21-\x7e]*$/.test(value)) {
    throw new InvalidArgumentError(
      'must be a path starting with / and without spaces, such as "/" or "/api/items"',
    );
  }
  return value;
}
