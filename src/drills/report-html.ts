import { describeEvent, type TimedStackEvent } from "../local/events/bus.ts";
import { type DrillReport, recoveryText, requestsSummary } from "./report.ts";
import type { TimelineMark } from "./timeline.ts";

/**
 * A drill report as one standalone HTML file: inline styles and SVG, the raw JSON embedded, no
 * script or style from anywhere else, so it opens from disk and can be kept per run.
 */

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "-");

/** Round numbers for an axis: 1, 2 or 5 times a power of ten. */
function niceStep(max: number, ticks: number): number {
  const raw = Math.max(max, 1e-9) / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return step ?? 10 * power;
}

const palette = ["#2563eb", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4f46e5", "#059669", "#ea580c"];
const markColor: Record<TimelineMark["kind"], string> = {
  fault: "#dc2626",
  recovery: "#16a34a",
  step: "#6b7280",
};
const markSymbol: Record<TimelineMark["kind"], string> = { fault: "↯", recovery: "✓", step: "•" };

/** The geometry both SVG charts share, so markers line up with the same x scale. */
interface Frame {
  left: number;
  width: number;
  duration: number;
  x: (seconds: number) => number;
}

function frame(report: DrillReport, left: number, width: number): Frame {
  const duration = Math.max(report.timeline.durationSeconds, 0.1);
  return { left, width, duration, x: (s) => left + (Math.min(Math.max(s, 0), duration) / duration) * width };
}

function marks(report: DrillReport): TimelineMark[] {
  const t = report.timeline;
  return [...(t.fault ? [t.fault] : []), ...t.recoveries, ...t.steps].sort((a, b) => a.seconds - b.seconds);
}

function xAxis(f: Frame, y: number): string {
  const step = niceStep(f.duration, 10);
  const ticks: string[] = [];
  for (let s = 0; s <= f.duration + 1e-9; s += step) {
    const x = f.x(s);
    ticks.push(
      `<line x1="${x}" x2="${x}" y1="${y}" y2="${y + 4}" stroke="#9ca3af"/><text x="${x}" y="${y + 16}" text-anchor="middle" class="tick">${fixed(s, step < 1 ? 1 : 0)} s</text>`,
    );
  }
  return `<line x1="${f.left}" x2="${f.left + f.width}" y1="${y}" y2="${y}" stroke="#9ca3af"/>${ticks.join("")}`;
}

/** Rows of mark labels this far apart: an 11 px label's box is 13 px high. */
const MARK_LABEL_ROW_PX = 14;

/**
 * Width of a mark label at 11 px semi-bold, estimated per character (no font metrics here): on the
 * wide side, so that two labels placed apart never touch (the browser test measures real boxes).
 */
export const markLabelWidth = (label: string): number => label.length * 7.4 + 6;

/**
 * The row of each label: the first row where it overlaps no label placed before it (a recovery
 * label close after the fault's goes under it, not over it; issue 25, item 7).
 */
export function labelRows(spans: { from: number; to: number }[], maxRows = 8): number[] {
  const placed: { row: number; from: number; to: number }[] = [];
  return spans.map((span) => {
    const free = (row: number) =>
      placed.every((p) => p.row !== row || span.to + 4 <= p.from || span.from >= p.to + 4);
    let row = 0;
    while (row < maxRows - 1 && !free(row)) row++;
    placed.push({ row, ...span });
    return row;
  });
}

function markLines(report: DrillReport, f: Frame, top: number, bottom: number, labelled: boolean): string {
  const all = marks(report).map((m) => {
    const x = f.x(m.seconds);
    const label = `${markSymbol[m.kind]} ${m.label} (${fixed(m.seconds)} s)`;
    // Labels right of the middle run leftwards, so they stay inside the chart.
    const rightHalf = x > f.left + f.width * 0.6;
    const width = markLabelWidth(label);
    return {
      m,
      x,
      label,
      rightHalf,
      from: rightHalf ? x - 3 - width : x + 3,
      to: rightHalf ? x - 3 : x + 3 + width,
    };
  });
  const rows = labelRows(all);
  return all
    .map(({ m, x, label, rightHalf }, i) => {
      const color = markColor[m.kind];
      const text = labelled
        ? `<text x="${rightHalf ? x - 3 : x + 3}" text-anchor="${rightHalf ? "end" : "start"}" y="${top + 11 + MARK_LABEL_ROW_PX * (rows[i] ?? 0)}" fill="${color}" class="mark-label">${escapeHtml(label)}</text>`
        : "";
      return `<g class="mark mark-${m.kind}" data-kind="${m.kind}" data-seconds="${m.seconds}" data-at="${escapeHtml(m.at)}"><title>${escapeHtml(`${label} at ${m.at}`)}</title><line x1="${x}" x2="${x}" y1="${top}" y2="${bottom}" stroke="${color}" stroke-width="2" stroke-dasharray="${m.kind === "fault" ? "0" : "5 3"}"/>${text}</g>`;
    })
    .join("");
}

/** Requests per second (successes and failures stacked), latency lines, marks, the impact window. */
function trafficChart(report: DrillReport): string {
  const t = report.timeline;
  const W = 1040;
  const top = 84;
  const H = 240;
  const f = frame(report, 64, W - 64 - 64);
  const perSecond = 1000 / t.bucketMs;
  const maxRate = Math.max(1, ...t.buckets.map((b) => (b.ok + b.failed) * perSecond));
  const rateStep = niceStep(maxRate, 5);
  const rateTop = Math.ceil(maxRate / rateStep) * rateStep;
  const maxLatency = Math.max(1, ...t.buckets.map((b) => b.latencyMs?.p99 ?? 0));
  const latencyStep = niceStep(maxLatency, 5);
  const latencyTop = Math.ceil(maxLatency / latencyStep) * latencyStep;
  const bottom = top + H;
  const yRate = (r: number) => bottom - (r / rateTop) * H;
  const yLatency = (ms: number) => bottom - (Math.min(ms, latencyTop) / latencyTop) * H;
  const barWidth = Math.max(0.5, (f.width * (t.bucketMs / 1000)) / f.duration - 0.3);

  const grid: string[] = [];
  for (let r = 0; r <= rateTop + 1e-9; r += rateStep) {
    const y = yRate(r);
    grid.push(
      `<line x1="${f.left}" x2="${f.left + f.width}" y1="${y}" y2="${y}" stroke="#e5e7eb"/><text x="${f.left - 6}" y="${y + 4}" text-anchor="end" class="tick">${fixed(r, 0)}</text>`,
    );
  }
  for (let ms = 0; ms <= latencyTop + 1e-9; ms += latencyStep) {
    grid.push(
      `<text x="${f.left + f.width + 6}" y="${yLatency(ms) + 4}" class="tick">${fixed(ms, latencyStep < 1 ? 1 : 0)} ms</text>`,
    );
  }
  const impact = t.impactWindow
    ? `<rect class="impact-window" data-from-seconds="${t.impactWindow.fromSeconds}" data-to-seconds="${t.impactWindow.toSeconds}" x="${f.x(t.impactWindow.fromSeconds)}" y="${top}" width="${Math.max(1, f.x(t.impactWindow.toSeconds) - f.x(t.impactWindow.fromSeconds))}" height="${H}" fill="#fde68a" fill-opacity="0.45"><title>impact window: ${fixed(t.impactWindow.fromSeconds)} s → ${fixed(t.impactWindow.toSeconds)} s</title></rect>`
    : "";
  const bars = t.buckets
    .map((b) => {
      if (b.ok + b.failed === 0) return "";
      const x = f.x(b.t);
      const okTop = yRate(b.ok * perSecond);
      const failTop = yRate((b.ok + b.failed) * perSecond);
      const tip = `${fixed(b.t, 1)} s: ${b.ok} ok, ${b.failed} failed${
        b.failed
          ? ` (${Object.entries(b.failures)
              .map(([k, v]) => `${k}×${v}`)
              .join(", ")})`
          : ""
      }${b.latencyMs ? `; p50 ${b.latencyMs.p50} ms, p99 ${b.latencyMs.p99} ms` : ""}`;
      return `<g><title>${escapeHtml(tip)}</title>${b.ok ? `<rect class="bar-ok" x="${x}" y="${okTop}" width="${barWidth}" height="${bottom - okTop}" fill="#86efac"/>` : ""}${b.failed ? `<rect class="bar-failed" x="${x}" y="${failTop}" width="${barWidth}" height="${okTop - failTop}" fill="#ef4444"/>` : ""}</g>`;
    })
    .join("");
  const line = (key: "p50" | "p95" | "p99", color: string) => {
    const points = t.buckets
      .filter((b) => b.latencyMs)
      .map((b) => `${fixed(f.x(b.t + t.bucketMs / 2000), 1)},${fixed(yLatency(b.latencyMs?.[key] ?? 0), 1)}`);
    return points.length
      ? `<polyline class="latency-${key}" points="${points.join(" ")}" fill="none" stroke="${color}" stroke-width="1.4"/>`
      : "";
  };
  const legend = [
    ["#86efac", "successful requests/s"],
    ["#ef4444", "failed requests/s"],
    ["#1d4ed8", "latency p50"],
    ["#f59e0b", "p95"],
    ["#7c2d12", "p99"],
    ["#fde68a", "impact window"],
  ]
    .map(
      ([c, l], i) =>
        `<rect x="${f.left + i * 160}" y="8" width="12" height="12" fill="${c}"/><text x="${f.left + i * 160 + 16}" y="18" class="tick">${l}</text>`,
    )
    .join("");
  return `<svg id="timeline" class="chart" viewBox="0 0 ${W} ${bottom + 28}" width="${W}" height="${bottom + 28}" role="img" aria-label="requests per second and latency over the run">
${legend}
<rect class="plot-area" data-plot data-duration-seconds="${f.duration}" x="${f.left}" y="${top}" width="${f.width}" height="${H}" fill="#fafafa"/>
${impact}${grid.join("")}${bars}${line("p50", "#1d4ed8")}${line("p95", "#f59e0b")}${line("p99", "#7c2d12")}
${markLines(report, f, top - 56, bottom, true)}
${xAxis(f, bottom)}
<text x="14" y="${top + H / 2}" transform="rotate(-90 14 ${top + H / 2})" text-anchor="middle" class="tick">requests/s</text>
</svg>`;
}

/** One lane per instance: where it served, shaded by its share of each bucket's successes. */
function instancesChart(report: DrillReport): string {
  const t = report.timeline;
  const ids: string[] = [];
  for (const b of t.buckets) for (const id of Object.keys(b.servedBy)) if (!ids.includes(id)) ids.push(id);
  const W = 1040;
  const lane = 22;
  const top = 8;
  const f = frame(report, 150, W - 150 - 64);
  const bottom = top + Math.max(1, ids.length) * lane;
  const cellWidth = Math.max(0.5, (f.width * (t.bucketMs / 1000)) / f.duration);
  const rows = ids
    .map((id, row) => {
      const y = top + row * lane;
      const color = palette[row % palette.length] ?? "#2563eb";
      const cells = t.buckets
        .filter((b) => (b.servedBy[id] ?? 0) > 0)
        .map(
          (b) =>
            `<rect x="${f.x(b.t)}" y="${y + 3}" width="${cellWidth}" height="${lane - 6}" fill="${color}" fill-opacity="${fixed(0.25 + 0.75 * ((b.servedBy[id] ?? 0) / Math.max(1, b.ok)), 2)}"/>`,
        )
        .join("");
      const served = report.servedBy[id] ?? 0;
      return `<g class="instance-lane" data-instance="${escapeHtml(id)}"><title>${escapeHtml(`${id}: ${served} successful responses`)}</title><text x="${f.left - 8}" y="${y + lane / 2 + 4}" text-anchor="end" class="lane-label">${escapeHtml(id)}</text><line x1="${f.left}" x2="${f.left + f.width}" y1="${y + lane}" y2="${y + lane}" stroke="#f3f4f6"/>${cells}</g>`;
    })
    .join("");
  return `<svg id="instances" class="chart" viewBox="0 0 ${W} ${bottom + 28}" width="${W}" height="${bottom + 28}" role="img" aria-label="instances that served over time">
${rows || `<text x="${f.left}" y="${top + 14}" class="tick">no successful response</text>`}
${markLines(report, f, top, bottom, false)}
${xAxis(f, bottom)}
</svg>`;
}

/** Scalar figures of the report, the drill-specific ones included. */
function keyFigures(report: DrillReport): [string, string][] {
  const p99 = Math.max(0, ...report.timeline.buckets.map((b) => b.latencyMs?.p99 ?? 0));
  const figures: [string, string][] = [
    ["requests", requestsSummary(report)],
    ["failed", String(report.failed)],
    ["recovery", recoveryText(report, "not recovered in time")],
    [
      "counter continuous",
      report.notMeasured?.counterContinuous !== undefined
        ? `not measured: ${report.notMeasured.counterContinuous}`
        : `${report.counterContinuous ? "yes" : "NO"} (${report.counter.first ?? "-"} → ${report.counter.last ?? "-"})`,
    ],
    ["worst bucket p99 latency", `${fixed(p99, 1)} ms`],
  ];
  if (report.timeline.fault)
    figures.push(["fault at", `${fixed(report.timeline.fault.seconds)} s (${report.timeline.fault.at})`]);
  for (const r of report.timeline.recoveries)
    figures.push([`recovered: ${r.label}`, `${fixed(r.seconds)} s (${r.at})`]);
  const shared = new Set([
    "drill",
    "requests",
    "failed",
    "recoverySeconds",
    "counterContinuous",
    "rate",
    "durationSeconds",
    "failures",
    "servedBy",
    "counter",
    "counterViolations",
    "timeline",
    "events",
    "verdict",
  ]);
  // A drill's own figures, in words: an object's fields each a figure of their own ("load rate"),
  // lists and nested values as text, never raw JSON (issue 25, item 7).
  const add = (label: string, value: unknown) => {
    const text = figureText(value);
    figures.push([label, text.length > 160 ? `${text.slice(0, 157)}…` : text]);
  };
  for (const [key, value] of Object.entries(report)) {
    if (shared.has(key) || value === undefined) continue;
    if (isRecord(value)) {
      for (const [sub, v] of Object.entries(value))
        if (v !== undefined) add(`${words(key)} ${words(sub)}`, v);
    } else add(words(key), value);
  }
  return figures;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** A field name as words: "scaleInSeconds" → "scale in seconds". */
const words = (key: string): string => key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();

/** A figure's value as text: numbers rounded, lists joined, objects as "name value" pairs. */
function figureText(value: unknown): string {
  if (value === null) return "none";
  if (typeof value === "number") return fixed(value, Number.isInteger(value) ? 0 : 2);
  if (typeof value === "string" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return value.length === 0 ? "none" : value.map(figureText).join("; ");
  if (isRecord(value)) {
    return Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${words(k)} ${figureText(v)}`)
      .join(", ");
  }
  return String(value);
}

/** An event's detail as the terminal prints it (after its time and type). */
function eventDetail(e: TimedStackEvent): string {
  return `${e.region ? `[${e.region}] ` : ""}${describeEvent(e)}`;
}

export function renderReportHtml(report: DrillReport): string {
  const t = report.timeline;
  const started = Date.parse(t.startedAt);
  const verdict = report.verdict;
  const failures = Object.entries(report.failures).sort((a, b) => b[1] - a[1]);
  const failureRows = failures.length
    ? failures
        .map(([reason, n]) => {
          const first = t.buckets.find((b) => (b.failures[reason] ?? 0) > 0);
          const last = [...t.buckets].reverse().find((b) => (b.failures[reason] ?? 0) > 0);
          return `<tr><td>${escapeHtml(reason)}</td><td class="num">${n}</td><td class="num">${first ? fixed(first.t, 1) : "-"} → ${last ? fixed(last.t + t.bucketMs / 1000, 1) : "-"} s</td></tr>`;
        })
        .join("")
    : `<tr><td colspan="3">no failed request</td></tr>`;
  const eventRows = report.events
    .map((e) => {
      const rest = eventDetail(e);
      return `<tr class="event"><td class="num">${fixed((Date.parse(e.time) - started) / 1000)}</td><td><code>${escapeHtml(e.type)}</code></td><td>${escapeHtml(rest)}</td></tr>`;
    })
    .join("");
  const json = JSON.stringify(report)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stayup drill ${escapeHtml(report.drill)}: ${verdict.passed ? "passed" : "FAILED"} (${escapeHtml(t.startedAt)})</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1080px; color: #111827; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.sub { color: #6b7280; margin: 0 0 16px; }
.verdict { display: inline-block; padding: 4px 12px; border-radius: 6px; font-weight: 700; color: #fff; }
.verdict.passed { background: #16a34a; } .verdict.failed { background: #dc2626; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { font-weight: 600; color: #374151; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ok { color: #16a34a; font-weight: 600; } .missed { color: #dc2626; font-weight: 600; }
.figures td:first-child { color: #6b7280; white-space: nowrap; } .figures td { font-variant-numeric: tabular-nums; word-break: break-word; }
svg.chart { max-width: 100%; height: auto; display: block; }
svg .tick { font-size: 11px; fill: #4b5563; } svg .mark-label { font-size: 11px; font-weight: 600; } svg .lane-label { font: 11px ui-monospace, monospace; fill: #374151; }
.events { max-height: 420px; overflow: auto; border: 1px solid #e5e7eb; } .events td { font-size: 12px; padding: 2px 8px; }
pre { background: #f9fafb; padding: 8px; overflow: auto; max-height: 420px; font-size: 12px; }
</style>
</head>
<body>
<h1>Drill <code>${escapeHtml(report.drill)}</code> <span class="verdict ${verdict.passed ? "passed" : "failed"}" id="verdict">${verdict.passed ? "PASSED" : "FAILED"}</span></h1>
<p class="sub">started ${escapeHtml(t.startedAt)}, ${fixed(t.durationSeconds, 1)} s of traffic in ${t.bucketMs} ms buckets; times below are seconds from the start</p>

<h2>Targets</h2>
<table id="targets"><tr><th>target</th><th>this run</th><th>result</th></tr>
${verdict.targets.map((x) => `<tr><td>${escapeHtml(x.target)}</td><td>${escapeHtml(x.actual)}</td><td class="${x.passed ? "ok" : "missed"}">${x.passed ? "met" : "MISSED"}</td></tr>`).join("")}
</table>

<h2>Key figures</h2>
<table class="figures" id="figures"><tr><th>figure</th><th>this run</th></tr>${keyFigures(report)
    .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`)
    .join("")}</table>

<h2>Timeline</h2>
${trafficChart(report)}

<h2>Instances that served</h2>
${instancesChart(report)}

<h2>Failures by reason</h2>
<table id="failures"><tr><th>reason</th><th class="num">requests</th><th class="num">from → to</th></tr>${failureRows}</table>

<h2>Events</h2>
<div class="events"><table id="events"><tr><th class="num">s</th><th>event</th><th>detail</th></tr>${eventRows}</table></div>

<h2>Raw report</h2>
<details><summary>JSON (also embedded as <code>script#stayup-report</code>)</summary><pre id="raw"></pre></details>
<script type="application/json" id="stayup-report">${json}</script>
<script>document.getElementById("raw").textContent = JSON.stringify(JSON.parse(document.getElementById("stayup-report").textContent), null, 2);</script>
</body>
</html>
`;
}
