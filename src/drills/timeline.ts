/** One time bucket of a drill's traffic (by completion time of each request). */
export interface TimelineBucket {
  /** Start of the bucket, in seconds from the start of the drill's traffic. */
  t: number;
  ok: number;
  failed: number;
  /** Failures by HTTP status or transport error code. */
  failures: Record<string, number>;
  /** Latency of the successful requests that completed in the bucket; null when none did. */
  latencyMs: { p50: number; p95: number; p99: number; max: number } | null;
  /** Successful responses per serving instance. */
  servedBy: Record<string, number>;
}

/** A moment of the drill: the fault it injected, each recovery it observed, or another step. */
export interface TimelineMark {
  kind: "fault" | "recovery" | "step";
  /** ISO time. */
  at: string;
  /** Seconds from the start of the drill's traffic. */
  seconds: number;
  label: string;
}

export interface DrillTimeline {
  startedAt: string;
  bucketMs: number;
  durationSeconds: number;
  /** When the drill broke something; null if it never got that far. */
  fault: TimelineMark | null;
  /** Every recovery event the drill waited for, in time order. */
  recoveries: TimelineMark[];
  /** Other actions of the drill (a region restored, a load stopped). */
  steps: TimelineMark[];
  /** From the fault to the recovery the report's recoverySeconds measures (or the end of the run). */
  impactWindow: { fromSeconds: number; toSeconds: number } | null;
  buckets: TimelineBucket[];
}

export type RequestOutcome =
  { ok: true; latencyMs: number; instanceId: string } | { ok: false; latencyMs: number; reason: string };

interface OpenBucket {
  ok: number;
  failed: number;
  failures: Record<string, number>;
  latencies: number[];
  servedBy: Record<string, number>;
}

/** Nearest-rank percentile of sorted values. */
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

/**
 * Every request of a drill in fixed time buckets, plus the drill's marks (fault, recoveries).
 * Shared by every traffic generator of a run, so the report shows everything clients saw.
 */
export class TimelineRecorder {
  private readonly buckets: OpenBucket[] = [];
  private readonly marks: { kind: TimelineMark["kind"]; at: number; label: string }[] = [];

  constructor(
    readonly startedAt = Date.now(),
    readonly bucketMs = 100,
  ) {}

  record(outcome: RequestOutcome, completedAt = Date.now()): void {
    const index = Math.max(0, Math.floor((completedAt - this.startedAt) / this.bucketMs));
    for (let i = this.buckets.length; i <= index; i++) {
      this.buckets.push({ ok: 0, failed: 0, failures: {}, latencies: [], servedBy: {} });
    }
    const b = this.buckets[index] as OpenBucket;
    if (outcome.ok) {
      b.ok++;
      b.latencies.push(outcome.latencyMs);
      b.servedBy[outcome.instanceId] = (b.servedBy[outcome.instanceId] ?? 0) + 1;
    } else {
      b.failed++;
      b.failures[outcome.reason] = (b.failures[outcome.reason] ?? 0) + 1;
    }
  }

  /** When the report's recoverySeconds counts from, if not the fault (slow-redis: the fault's clearing). */
  private recoveryCountsFrom?: number;

  mark(kind: TimelineMark["kind"], label: string, at = Date.now()): void {
    this.marks.push({ kind, at, label });
  }

  /** The impact window then ends `recoverySeconds` after `at` instead of after the fault. */
  countRecoveryFrom(at: number): void {
    this.recoveryCountsFrom = at;
  }

  /** The timeline up to `endAt`; the impact window ends `recoverySeconds` after the fault. */
  build(recoverySeconds: number | null, endAt = Date.now()): DrillTimeline {
    const seconds = (at: number) => round((at - this.startedAt) / 1000);
    const marks = [...this.marks]
      .sort((a, b) => a.at - b.at)
      .map((m) => ({
        kind: m.kind,
        at: new Date(m.at).toISOString(),
        seconds: seconds(m.at),
        label: m.label,
      }));
    const durationSeconds = Math.max(seconds(endAt), (this.buckets.length * this.bucketMs) / 1000);
    const fault = marks.find((m) => m.kind === "fault") ?? null;
    return {
      startedAt: new Date(this.startedAt).toISOString(),
      bucketMs: this.bucketMs,
      durationSeconds,
      fault,
      recoveries: marks.filter((m) => m.kind === "recovery"),
      steps: marks.filter((m) => m.kind === "step"),
      impactWindow: fault
        ? {
            fromSeconds: fault.seconds,
            toSeconds:
              recoverySeconds === null
                ? durationSeconds
                : Math.min(
                    durationSeconds,
                    round(
                      (this.recoveryCountsFrom === undefined
                        ? fault.seconds
                        : seconds(this.recoveryCountsFrom)) + recoverySeconds,
                    ),
                  ),
          }
        : null,
      buckets: this.buckets.map((b, i) => {
        const sorted = [...b.latencies].sort((x, y) => x - y);
        return {
          t: round((i * this.bucketMs) / 1000),
          ok: b.ok,
          failed: b.failed,
          failures: b.failures,
          latencyMs: sorted.length
            ? {
                p50: round(percentile(sorted, 50), 1),
                p95: round(percentile(sorted, 95), 1),
                p99: round(percentile(sorted, 99), 1),
                max: round(sorted[sorted.length - 1] ?? 0, 1),
              }
            : null,
          servedBy: b.servedBy,
        };
      }),
    };
  }
}

const sparkChars = "▁▂▃▄▅▆▇█";

/**
 * The run on one line: successful requests per column as a sparkline; `×` where requests failed,
 * `↯` at the fault and `✓` at each recovery.
 */
export function sparkline(timeline: DrillTimeline, width = 60): string {
  const n = timeline.buckets.length;
  if (n === 0) return "";
  const columns = Math.min(width, n);
  const per = n / columns;
  const cols = Array.from({ length: columns }, (_, c) => {
    const slice = timeline.buckets.slice(Math.floor(c * per), Math.floor((c + 1) * per));
    return { ok: slice.reduce((s, b) => s + b.ok, 0), failed: slice.reduce((s, b) => s + b.failed, 0) };
  });
  const top = Math.max(1, ...cols.map((c) => c.ok));
  const chars = cols.map((c) =>
    c.failed > 0 ? "×" : (sparkChars[Math.round((c.ok / top) * (sparkChars.length - 1))] ?? "▁"),
  );
  const columnOf = (seconds: number) =>
    Math.min(columns - 1, Math.floor((seconds / ((n * timeline.bucketMs) / 1000)) * columns));
  for (const r of timeline.recoveries) chars[columnOf(r.seconds)] = "✓";
  if (timeline.fault) chars[columnOf(timeline.fault.seconds)] = "↯";
  return chars.join("");
}
