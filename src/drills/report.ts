import type { TimedStackEvent } from "../local/events/bus.ts";
import { type DrillTimeline, sparkline } from "./timeline.ts";

/** One of a drill's targets, checked against what the run measured. */
export interface DrillTarget {
  target: string;
  passed: boolean;
  actual: string;
}

/** The shape every drill reports in: for people (formatReport) and machines (--json). */
export interface DrillReport {
  drill: string;
  /** Requests the drill sent through the load balancer. */
  requests: number;
  /** Non-2xx answers plus transport errors: what users saw. */
  failed: number;
  /** From the fault to full capacity back in rotation; null if it never recovered in time. */
  recoverySeconds: number | null;
  /** The count never went backwards or reset. */
  counterContinuous: boolean;
  rate: number;
  durationSeconds: number;
  failures: Record<string, number>;
  servedBy: Record<string, number>;
  counter: { first?: number; last?: number };
  counterViolations: { expectedAbove: number; got: number }[];
  /** Requests in 100 ms buckets, with the fault and recovery times (ISO and seconds from the start). */
  timeline: DrillTimeline;
  /** The stack's events during the run. */
  events: TimedStackEvent[];
  /**
   * Figures this run could not measure on this service, each with why (the counter's continuity and
   * acknowledged counts on a service without webService.consistencyProbePath). Absent: all measured.
   */
  notMeasured?: Record<string, string>;
  /** The drill's targets and whether this run met every one. */
  verdict: { passed: boolean; targets: DrillTarget[] };
  [extra: string]: unknown;
}

const yesNo = (b: boolean) => (b ? "yes" : "NO");

/** The targets every drill shares: nobody saw a failure, the stack recovered, no count lost. */
export function basicTargets(report: DrillReport): DrillTarget[] {
  return [
    {
      target: "no failed request",
      passed: report.failed === 0,
      actual: `${report.failed} failed of ${report.requests}`,
    },
    recoveredTarget(report),
    counterTarget(report),
  ];
}

/**
 * The recovery as a report says it: in seconds, not recovered within the drill's timeout, or, for
 * a drill interrupted before its end (its `interrupted` figure), not measured: it was not waited for.
 */
export function recoveryText(report: DrillReport, notRecovered: string): string {
  if (report.recoverySeconds !== null) return `${report.recoverySeconds.toFixed(2)} s`;
  const interrupted = report.interrupted as { reason?: string } | undefined;
  return interrupted
    ? `not measured: interrupted (${interrupted.reason ?? "?"}) before the end`
    : notRecovered;
}

export const recoveredTarget = (report: DrillReport): DrillTarget => ({
  target: "recovered within the drill's timeout",
  // Not measured is not a miss (as for the counter): the interruption is the run's miss.
  passed: report.recoverySeconds !== null || report.interrupted !== undefined,
  actual: recoveryText(report, "not recovered"),
});

export const counterTarget = (report: DrillReport): DrillTarget => {
  const why = report.notMeasured?.counterContinuous;
  // Not measured is not a miss: the service offers nothing to measure (the report says why).
  if (why !== undefined)
    return { target: "the count never went back", passed: true, actual: `not measured: ${why}` };
  return {
    target: "the count never went back",
    passed: report.counterContinuous,
    actual: report.counterContinuous ? "continuous" : `${report.counterViolations.length} violation(s)`,
  };
};

/** Sets the report's verdict from its targets. */
export function withVerdict(report: DrillReport, targets: DrillTarget[]): DrillReport {
  report.verdict = { passed: targets.every((t) => t.passed), targets };
  return report;
}

/**
 * The requests a run sent, as the sum it is: the steady client traffic at `rate` for the run's
 * duration, plus any extra traffic of the drill (cpu-spike's CPU-heavy load, `report.load`), each
 * with its own rate and duration, so the figures add up.
 */
export function requestsSummary(report: DrillReport): string {
  const steady = `${report.rate}/s for ${report.durationSeconds.toFixed(1)} s`;
  const load = report.load as
    { requests?: number; rate?: number; durationSeconds?: number; cpuMsPerRequest?: number } | undefined;
  if (!load || typeof load.requests !== "number" || load.requests === 0)
    return `${report.requests} (${steady})`;
  const loadDuration =
    typeof load.durationSeconds === "number" ? ` for ${load.durationSeconds.toFixed(1)} s` : "";
  return `${report.requests} (${report.requests - load.requests} steady at ${steady}, plus ${load.requests} CPU-heavy at ${load.rate}/s${loadDuration})`;
}

export function formatReport(report: DrillReport, details: string[] = []): string {
  const failures = Object.entries(report.failures)
    .map(([k, v]) => `${k}×${v}`)
    .join(", ");
  const lines = [
    `Drill ${report.drill}`,
    ...details.map((d) => `  ${d}`),
    `  requests sent        ${requestsSummary(report)}`,
    `  failed requests      ${report.failed}${failures ? ` (${failures})` : ""}`,
    `  recovery             ${recoveryText(report, "NOT RECOVERED in time")}`,
    report.notMeasured?.counterContinuous !== undefined
      ? `  counter continuous   not measured: ${report.notMeasured.counterContinuous}`
      : `  counter continuous   ${yesNo(report.counterContinuous)} (${report.counter.first ?? "-"} → ${report.counter.last ?? "-"})`,
    `  served by            ${Object.entries(report.servedBy)
      .map(([id, n]) => `${id}: ${n}`)
      .join(", ")}`,
    `  timeline             ${sparkline(report.timeline)}  (↯ fault, ✓ recovered, × failures; ${report.timeline.durationSeconds.toFixed(1)} s)`,
    `  verdict              ${report.verdict.passed ? "PASSED" : "FAILED"}${report.verdict.targets
      .filter((t) => !t.passed)
      .map((t) => `; missed: ${t.target} (${t.actual})`)
      .join("")}`,
  ];
  return lines.join("\n");
}
