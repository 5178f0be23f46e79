import type { Option } from "commander";
import type { StackClient } from "../local/control-plane/client.ts";
import type { ResolvedStack } from "../stack/index.ts";
import type { DrillReport } from "./report.ts";

/** What a drill's run gets: the stack to break (through its control plane) and the run's settings. */
export interface DrillContext<O> {
  client: StackClient;
  /** The description the stack was loaded from (for settings such as the CPU target). */
  stack: ResolvedStack;
  /** Requests per second during the drill. */
  rate: number;
  onProgress?: (message: string) => void;
  /** The drill's own options (those of `options()`), as parsed. */
  options: O;
}

/** One drill: `stayup drill <name>` is registered from this alone (see registry.ts). */
export interface DrillModule<O = Record<string, unknown>> {
  name: string;
  description: string;
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

/** Types a drill's own options while the registry holds every drill under one type. */
export const defineDrill = <O>(drill: DrillModule<O>): DrillModule => drill as unknown as DrillModule;

/** The verdict most drills share: nothing failed, recovered in time, the count continued. */
export const basicVerdict = (r: DrillReport): boolean =>
  r.failed === 0 && r.recoverySeconds !== null && r.counterContinuous;
