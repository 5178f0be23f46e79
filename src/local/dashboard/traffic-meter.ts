import { REGION_HEALTH_CHECK_USER_AGENT } from "../../stack/derived.ts";

/** Route 53's checkers, ours included, name themselves so (see REGION_HEALTH_CHECK_USER_AGENT). */
const route53CheckerAgent = REGION_HEALTH_CHECK_USER_AGENT.split(" ")[0] ?? "";

/** One second of traffic through the load balancers (or a single instance's stable address), as the dashboard charts it. */
export interface TrafficSample {
  /** Start of the second, ms since epoch. */
  t: number;
  /** Answers below 500. */
  ok: number;
  /** 5xx answers and connections closed without an answer. */
  failed: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Requests sent to each instance during the second. */
  byInstance: Record<string, number>;
}

interface OpenSecond {
  t: number;
  ok: number;
  failed: number;
  latencies: number[];
  byInstance: Record<string, number>;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length
    ? (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null)
    : null;

/**
 * Requests through the load balancers in one-second samples over a sliding window. The balancer
 * reports each answer (its `observer` hook), or the stable address does for a single instance; the
 * meter owns the aggregation, pure of any timer.
 */
export class TrafficMeter {
  private readonly samples: TrafficSample[] = [];
  /** Closed since the last tick(), by tick() or by a request of a later second. */
  private unread: TrafficSample[] = [];
  private current?: OpenSecond;

  constructor(private readonly windowSeconds = 300) {}

  record(
    answer: { statusCode: number; latencyMs: number; instanceId?: string; userAgent?: string },
    now = Date.now(),
  ): void {
    // Client traffic only. The balancers' own target checks never pass through a listener, as on
    // AWS, where "metrics for Application Load Balancers exclude health check requests"
    // (RequestCount counts the requests a balancer routed to a target). The failover's region
    // checks do pass through it, whatever path they ask (/health/deep, or /health while a failback
    // waits for the primary's Redis): they are told by their User-Agent, whatever the path. On
    // AWS, Route 53's checks reach the ALB as requests and are in its RequestCount; the dashboard
    // departs from that on purpose, its figures being what clients sent.
    if (answer.userAgent?.startsWith(route53CheckerAgent)) return;
    const second = this.roll(now);
    if (answer.statusCode > 0 && answer.statusCode < 500) {
      second.ok++;
      second.latencies.push(answer.latencyMs);
    } else second.failed++;
    if (answer.instanceId)
      second.byInstance[answer.instanceId] = (second.byInstance[answer.instanceId] ?? 0) + 1;
  }

  /** Closes the seconds before `now`; returns every sample closed since the previous tick. */
  tick(now = Date.now()): TrafficSample[] {
    this.roll(now);
    const closed = this.unread;
    this.unread = [];
    return closed;
  }

  /** The closed samples of the window, oldest first. */
  history(): TrafficSample[] {
    return [...this.samples];
  }

  private roll(now: number): OpenSecond {
    const t = Math.floor(now / 1000) * 1000;
    if (this.current && this.current.t !== t) {
      this.close(this.current);
      // Seconds with no request at all are samples too: the chart shows the gap as zero.
      for (let gap = Math.max(this.current.t + 1000, t - this.windowSeconds * 1000); gap < t; gap += 1000)
        this.close({ t: gap, ok: 0, failed: 0, latencies: [], byInstance: {} });
      this.current = undefined;
    }
    this.current ??= { t, ok: 0, failed: 0, latencies: [], byInstance: {} };
    return this.current;
  }

  private close(s: OpenSecond): void {
    const sorted = s.latencies.sort((a, b) => a - b);
    const r = (n: number | null) => (n === null ? null : Math.round(n * 10) / 10);
    const sample = {
      t: s.t,
      ok: s.ok,
      failed: s.failed,
      p50: r(percentile(sorted, 50)),
      p95: r(percentile(sorted, 95)),
      p99: r(percentile(sorted, 99)),
      byInstance: s.byInstance,
    };
    this.samples.push(sample);
    this.unread.push(sample);
    if (this.unread.length > this.windowSeconds) this.unread.shift();
    while (this.samples.length > this.windowSeconds) this.samples.shift();
  }
}
