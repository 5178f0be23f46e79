import type { Option } from "commander";
import type { StackClient } from "../local/control-plane/client.ts";
import { StayupError } from "../shared/errors.ts";
import { topologies, type Topology } from "../stack/names.ts";
import type { ResolvedStack } from "../stack/schema.ts";
import type { DrillOptions } from "./harness.ts";
import type { DrillReport, DrillTarget } from "./report.ts";

/** Whether a drill runs on one topology: `true`, or why not and what to run instead (a command). */
export type TopologySupport = true | { unsupported: string; instead: string };
export type DrillTopologies = Record<Topology, TopologySupport>;

/** The topologies a drill runs on, in the description's order. */
export const supportedTopologies = (drill: Pick<DrillModule, "topologies">): Topology[] =>
  topologies.filter((t) => drill.topologies[t] === true);

/** The line `stayup drill --help` shows after a drill's description (from the declaration). */
export const topologiesLine = (drill: Pick<DrillModule, "topologies">): string =>
  `(topologies: ${supportedTopologies(drill).join(", ")})`;

/** Each topology on a line: "runs here", or why not and what to run instead (a drill's --help). */
export const topologySupportHelp = (drill: Pick<DrillModule, "topologies">): string =>
  [
    "Topologies:",
    ...topologies.map((t) => {
      const support = drill.topologies[t];
      return support === true
        ? `  ${t}: runs here`
        : `  ${t}: does not run here: ${support.unsupported}; instead, ${support.instead}`;
    }),
  ].join("\n");

/**
 * Refuses a drill on a topology it does not run on, before anything starts: the error names the
 * drill, the topology and the reason; the hint says what to run instead.
 */
export function assertRunsOn(
  drill: Pick<DrillModule, "name" | "topologies">,
  topology: Topology,
  running?: { stateDir: string },
): void {
  const support = drill.topologies[topology];
  if (support === true) return;
  // A drill on another topology needs a stack of it: not while this state folder runs this one.
  const otherStack = support.instead.includes("--topology");
  const where =
    running && otherStack
      ? ` on a stack of that topology: stop the one running from ${running.stateDir} first (\`stayup down\`), or pass another --state-dir (the drill then starts a temporary stack beside it)`
      : "";
  throw new StayupError(
    `the ${drill.name} drill does not run on topology "${topology}": ${support.unsupported}`,
    `${support.instead}${where}; ${drill.name} runs on: ${supportedTopologies(drill).join(", ")}`,
  );
}

/** Refuses a counter-only drill on the user's own service, before anything starts. */
export function assertRunsOnService(
  drill: Pick<DrillModule, "name" | "counterOnly">,
  service: "counter" | "command",
): void {
  if (service === "counter" || drill.counterOnly === undefined) return;
  throw new StayupError(
    `the ${drill.name} drill does not run on your own service (webService.start): ${drill.counterOnly}`,
    "run it on the built-in counter (a description without webService.start), or use kill-instance, redis-failover, az-outage",
  );
}

/** What a drill's run gets: the stack to break (through its control plane) and the run's settings. */
export interface DrillContext<O> {
  client: StackClient;
  /** The description the stack was loaded from (for settings such as the CPU target). */
  stack: ResolvedStack;
  /** Requests per second during the drill. */
  rate: number;
  onProgress?: (message: string) => void;
  /**
   * The harness's settings every drill passes on to its run: the steady phases before the fault and
   * after recovery, and the interruption that stops it at any wait.
   */
  harness?: Partial<
    Pick<DrillOptions, "warmupMs" | "cooldownMs" | "interruption" | "trafficPath" | "clientName">
  >;
  /** The drill's own options (those of `options()`), as parsed. */
  options: O;
}

/** One drill: `stayup drill <name>` is registered from this alone (see registry.ts). */
export interface DrillModule<O = Record<string, unknown>> {
  name: string;
  description: string;
  /**
   * For every topology: `true` if the drill runs there, or why not and what to run instead. A
   * Record over every topology, so a topology added to the description is a compile error in each
   * drill that has not said what it does there.
   */
  topologies: DrillTopologies;
  /**
   * Set when the drill works through the built-in counter itself (a fault sent over its channel, its
   * `/load` page): why, so that on the user's own service (webService.start) it is refused, not run
   * to a verdict that broke nothing.
   */
  counterOnly?: string;
  /** Command-line options beyond the common ones (--rate, --json, --config, --env, --topology). */
  options?: () => Option[];
  run(context: DrillContext<O>): Promise<DrillReport>;
  /** Lines about this drill shown above the common report lines. */
  details(report: DrillReport): string[];
  /** Whether the drill passed (usually `report.verdict.passed`); the command exits 1 when not. */
  passed(report: DrillReport): boolean;
}

/**
 * Makes the report's verdict agree with the drill's pass condition, so the HTML report and the
 * exit code never disagree. The drill's condition decides (a single instance's roll has downtime by
 * design): a drill whose targets do not match it gets it as a target of its own.
 */
export function concludeVerdict(drill: DrillModule, report: DrillReport): DrillReport {
  const passed = drill.passed(report);
  if (passed !== report.verdict.passed) {
    report.verdict.targets.push({
      target: `the ${drill.name} drill's pass condition`,
      passed,
      actual: passed ? "met" : "not met",
    });
    report.verdict.passed = passed;
  }
  return report;
}

/**
 * What every drill's timeline must show (issue #11): a marker at the fault, and, when the drill
 * recovered, at least one recovery marker, none before the fault. Null when it does.
 */
export function missingMarks(report: DrillReport): DrillTarget | null {
  const { fault, recoveries } = report.timeline;
  const actual = !fault
    ? "no fault marker"
    : report.recoverySeconds !== null && recoveries.length === 0
      ? "recovered, but no recovery marker"
      : recoveries.some((r) => r.seconds < fault.seconds)
        ? "a recovery marker before the fault"
        : null;
  return actual === null
    ? null
    : { target: "the timeline marks the fault and each recovery", passed: false, actual };
}

/** Drills made by defineDrill; the registry holds no other (test/drill-report.test.ts). */
const defined = new WeakSet<DrillModule>();
export const isDefinedDrill = (drill: DrillModule): boolean => defined.has(drill);

/**
 * Types a drill's own options while the registry holds every drill under one type, and makes its
 * markers part of its verdict: a run whose timeline lacks the fault or recovery marker fails,
 * whoever runs it (CLI, dashboard, tests), so a drill cannot forget them unnoticed.
 */
export function defineDrill<O>(drill: DrillModule<O>): DrillModule {
  const module: DrillModule<O> = {
    ...drill,
    run: async (context) => {
      // The dashboard names the run's client-side figures after the drill, whoever runs it.
      const report = await drill.run({
        ...context,
        harness: { clientName: `drill ${drill.name}`, ...context.harness },
      });
      const missing = missingMarks(report);
      if (missing) {
        report.verdict.targets.push(missing);
        report.verdict.passed = false;
      }
      return report;
    },
    // The marks first: a drill's own condition may read fields a report missing them lacks.
    passed: (report) => missingMarks(report) === null && drill.passed(report),
  };
  const untyped = module as unknown as DrillModule;
  defined.add(untyped);
  return untyped;
}

/** The verdict most drills share: nothing failed, recovered in time, the count continued. */
export const basicVerdict = (r: DrillReport): boolean =>
  r.failed === 0 && r.recoverySeconds !== null && r.counterContinuous;
