import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { StayupError } from "../shared/errors.ts";
import type { DrillReport } from "./report.ts";
import { renderReportHtml } from "./report-html.ts";

/** Where a run's files go: `html` if given (its JSON next to it), else `<stateDir>/reports/`. */
export function reportPaths(
  report: DrillReport,
  stateDir: string,
  html?: string,
): { html: string; json: string } {
  if (html) {
    const base = html.replace(/\.html?$/i, "");
    return { html, json: `${base}.json` };
  }
  const stamp = report.timeline.startedAt.replace(/[:.]/g, "-");
  const base = path.join(stateDir, "reports", `${report.drill}-${stamp}`);
  return { html: `${base}.html`, json: `${base}.json` };
}

/** Writes the standalone HTML report and the JSON it was rendered from. */
export function saveReport(
  report: DrillReport,
  stateDir: string,
  html?: string,
): { html: string; json: string } {
  const paths = reportPaths(report, stateDir, html);
  mkdirSync(path.dirname(paths.html), { recursive: true });
  mkdirSync(path.dirname(paths.json), { recursive: true });
  writeFileSync(paths.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(paths.html, renderReportHtml(report));
  return paths;
}

/** A saved JSON report, checked to be one before anything is rendered. */
export function loadReport(file: string): DrillReport {
  if (!existsSync(file)) {
    // The HTML's name with its JSON beside it (the HTML moved or deleted): that JSON is the fix.
    const json = file.replace(/\.html?$/i, ".json");
    throw new StayupError(
      `no such file: ${file}`,
      json !== file && existsSync(json)
        ? `pass the .json beside it: \`stayup report ${json}\``
        : "pass the .json a drill wrote (see `stayup drill … --report`)",
    );
  }
  let report: Partial<DrillReport>;
  try {
    report = JSON.parse(readFileSync(file, "utf8")) as Partial<DrillReport>;
  } catch (error) {
    // The HTML a drill wrote is the usual mistake: its JSON is beside it, under the same name.
    if (/\.html?$/i.test(file)) {
      throw new StayupError(
        `${file} is not JSON (an HTML report?): \`stayup report\` reads the JSON a drill saves beside it`,
        `pass that .json: \`stayup report ${file.replace(/\.html?$/i, ".json")}\``,
      );
    }
    throw new StayupError(
      `${file} is not JSON: ${(error as Error).message.replace(/\s+/g, " ")}`,
      "pass the .json a drill wrote next to its HTML report (see `stayup drill … --report`)",
    );
  }
  const missing = (["drill", "requests", "failed", "timeline", "events", "verdict"] as const).filter(
    (k) => report[k] === undefined,
  );
  if (missing.length || !Array.isArray(report.timeline?.buckets)) {
    throw new StayupError(
      `${file} is not a stayup drill report (missing: ${missing.length ? missing.join(", ") : "timeline.buckets"})`,
      "pass the .json a drill wrote next to its HTML report",
    );
  }
  return report as DrillReport;
}
