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
  [extra: string]: unknown;
}

const yesNo = (b: boolean) => (b ? "yes" : "NO");

export function formatReport(report: DrillReport, details: string[] = []): string {
  const failures = Object.entries(report.failures)
    .map(([k, v]) => `${k}×${v}`)
    .join(", ");
  const lines = [
    `Drill ${report.drill}`,
    ...details.map((d) => `  ${d}`),
    `  requests sent        ${report.requests} (${report.rate}/s for ${report.durationSeconds.toFixed(1)} s)`,
    `  failed requests      ${report.failed}${failures ? ` (${failures})` : ""}`,
    `  recovery             ${report.recoverySeconds === null ? "NOT RECOVERED in time" : `${report.recoverySeconds.toFixed(2)} s`}`,
    `  counter continuous   ${yesNo(report.counterContinuous)} (${report.counter.first ?? "-"} → ${report.counter.last ?? "-"})`,
    `  served by            ${Object.entries(report.servedBy)
      .map(([id, n]) => `${id}: ${n}`)
      .join(", ")}`,
  ];
  return lines.join("\n");
}
