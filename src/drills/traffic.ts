import { Resolver } from "node:dns/promises";
import type { Pool } from "undici";

/**
 * undici, loaded when traffic is first sent: the drills are part of the runtime's bundle (a drill
 * can be started from the dashboard), and undici held about 10 MiB of a stack at rest that never
 * runs one (issue 25, item 12).
 */
let undici: Promise<typeof import("undici")> | undefined;
export const loadUndici = () => (undici ??= import("undici"));
import { DRILL_CLIENT_TIMEOUT_MS } from "../stack/region-failover-timing.ts";
import type { ClientFigures } from "./client-figures.ts";
import type { TimelineRecorder } from "./timeline.ts";

export interface TrafficOptions {
  /** Requests per second. */
  rate: number;
  /** Hard bounds: the generator stops by itself at whichever comes first. */
  maxDurationMs: number;
  maxRequests: number;
  connections?: number;
  /** Per request (headers, then body); default DRILL_CLIENT_TIMEOUT_MS, above the write hold. */
  timeoutMs?: number;
  /** Path requested (default `/`, the counter page, whose count is checked for continuity). */
  path?: string;
  /** Sent with every request, besides `accept` (the load drill's secret). */
  headers?: Record<string, string>;
  /**
   * Resolve this name through this DNS server (honouring the answer's TTL) instead of using the
   * URL's host: how a client follows a DNS failover.
   */
  resolve?: { name: string; server: string; port: number };
  /** Records every request (outcome, latency, serving instance) in the drill's time buckets. */
  timeline?: TimelineRecorder;
  /**
   * Counts every request's outcome per second and sends it to the stack's control plane (the
   * dashboard's client-side figures); closed, its last seconds sent, when the traffic stops.
   */
  figures?: ClientFigures;
  /**
   * Where the number that must never go back comes from: the counter's answers (`count`, each
   * request a larger one: the default), the user's probe path (a number, the body or JSON `count`,
   * that may stay but never fall; read from the answers when it is the traffic path, else polled
   * one request at a time), or nowhere (`none`: continuity is not measured).
   */
  consistency?: "counter" | "none" | { probePath: string };
}

export interface TrafficResult {
  requests: number;
  failed: number;
  /** Failure counts by HTTP status or transport error code. */
  failures: Record<string, number>;
  /** Successful responses per serving instance. */
  servedBy: Record<string, number>;
  counterContinuous: boolean;
  counterViolations: { expectedAbove: number; got: number }[];
  /** The largest step back seen (every violation, not only the first 20 kept). */
  countWentBackBy?: number;
  firstCount?: number;
  lastCount?: number;
  /** How long it sent requests (until stopped or a bound), not counting the wait for the last answers. */
  durationSeconds: number;
  /** Requests to the consistency probe path (when it is not the traffic path), and how many answered a number. */
  probe?: { requests: number; answered: number };
  /** Time of every failure (ms since epoch), to measure outage windows. */
  failureTimes: number[];
  /** Every request: when it was sent (ms since epoch) and how long it took (ms), failed or not. */
  latencies: { sentAt: number; ms: number }[];
  /**
   * With `resolve`: every count answered, when (ms since epoch) and by which address, in the order
   * answered (so a drill can tell what each region acknowledged).
   */
  answers?: { at: number; count: number; address: string }[];
}

/**
 * Steady GET / traffic through the load balancer at a fixed rate, bounded in count and time.
 * Counter continuity: a request sent after another one completed must see a larger count
 * (the count may skip numbers when retries or other clients increment it; it may never go back).
 */
export class SteadyTraffic {
  private readonly pools = new Map<string, Pool>();
  private resolved?: { origin: string; until: number };
  private resolving?: Promise<string>;
  private readonly resolver = new Resolver({ timeout: 500, tries: 1 });
  /** Distinct addresses the DNS name resolved to, in order. */
  readonly resolvedAddresses: string[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;
  private startedAt = 0;
  private sent = 0;
  private highestCompleted = 0;
  private done?: () => void;
  private readonly finished: Promise<void>;
  private readonly result: TrafficResult = {
    requests: 0,
    failed: 0,
    failures: {},
    servedBy: {},
    counterContinuous: true,
    counterViolations: [],
    durationSeconds: 0,
    failureTimes: [],
    latencies: [],
  };

  constructor(
    private readonly url: string,
    private readonly options: TrafficOptions,
  ) {
    if (options.resolve) this.resolver.setServers([options.resolve.server]);
    // Loaded before the first request is due, so no request's latency includes the load.
    void loadUndici();
    this.finished = new Promise((resolve) => {
      this.done = resolve;
    });
  }

  start(): void {
    if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/.test(this.url)) {
      throw new Error(`refusing to send drill traffic to ${this.url}: drills target loopback addresses only`);
    }
    this.startedAt = Date.now();
    this.options.figures?.start();
    this.timer = setInterval(() => this.tick(), 5);
    const consistency = this.options.consistency;
    if (typeof consistency === "object" && consistency.probePath !== this.path) {
      const p = this.probeLoop(consistency.probePath).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
  }

  private tick(): void {
    const elapsed = Date.now() - this.startedAt;
    if (elapsed >= this.options.maxDurationMs || this.sent >= this.options.maxRequests) {
      void this.stop();
      return;
    }
    const due = Math.min(Math.floor((this.options.rate * elapsed) / 1000), this.options.maxRequests);
    while (this.sent < due) {
      this.sent++;
      const p = this.one().finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
  }

  private fail(reason: string, startedAt: number): void {
    this.options.timeline?.record({ ok: false, reason, latencyMs: performance.now() - startedAt });
    this.options.figures?.record({ ok: false, reason });
    this.result.failed++;
    this.result.failures[reason] = (this.result.failures[reason] ?? 0) + 1;
    this.result.failureTimes.push(Date.now());
  }

  private async pool(origin: string): Promise<Pool> {
    let pool = this.pools.get(origin);
    if (!pool) {
      const { Pool } = await loadUndici();
      // Another request may have made it meanwhile.
      pool = this.pools.get(origin);
      if (pool) return pool;
      pool = new Pool(origin, {
        connections: this.options.connections ?? 32,
        headersTimeout: this.options.timeoutMs ?? DRILL_CLIENT_TIMEOUT_MS,
        bodyTimeout: this.options.timeoutMs ?? DRILL_CLIENT_TIMEOUT_MS,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** The origin to send to: the URL, or the DNS answer while its TTL lasts. */
  private async origin(): Promise<string> {
    const resolve = this.options.resolve;
    if (!resolve) return this.url;
    if (this.resolved && Date.now() < this.resolved.until) return this.resolved.origin;
    this.resolving ??= (async () => {
      try {
        const [answer] = await this.resolver.resolve4(resolve.name, { ttl: true });
        if (!answer) throw new Error(`no A record for ${resolve.name}`);
        if (!answer.address.startsWith("127.")) throw new Error(`${resolve.name} resolved off loopback`);
        const origin = `http://${answer.address}:${resolve.port}`;
        if (this.resolvedAddresses[this.resolvedAddresses.length - 1] !== answer.address) {
          this.resolvedAddresses.push(answer.address);
        }
        this.resolved = { origin, until: Date.now() + answer.ttl * 1000 };
        return origin;
      } finally {
        this.resolving = undefined;
      }
    })();
    return this.resolving;
  }

  private async one(): Promise<void> {
    const sentAt = Date.now();
    try {
      await this.send();
    } finally {
      this.result.latencies.push({ sentAt, ms: Date.now() - sentAt });
    }
  }

  private async send(): Promise<void> {
    const floor = this.highestCompleted;
    const startedAt = performance.now();
    this.result.requests++;
    try {
      const origin = await this.origin();
      const res = await (
        await this.pool(origin)
      ).request({
        method: "GET",
        path: this.options.path ?? "/",
        headers: { accept: "application/json", ...this.options.headers },
      });
      const text = await res.body.text();
      // What a client calls a failure: 5xx (and any non-2xx), refused, reset, timed out.
      if (res.statusCode < 200 || res.statusCode > 299) return this.fail(String(res.statusCode), startedAt);
      const body = parseAnswer(text);
      const instanceId = typeof body.instanceId === "string" ? body.instanceId : unnamedInstance;
      this.options.timeline?.record({ ok: true, latencyMs: performance.now() - startedAt, instanceId });
      this.options.figures?.record({ ok: true });
      this.result.servedBy[instanceId] = (this.result.servedBy[instanceId] ?? 0) + 1;
      const consistency = this.options.consistency ?? "counter";
      if (consistency === "counter" && typeof body.count === "number") {
        this.observe(body.count, floor, true);
        // Which region answered which count: a region failover's report compares the two sides.
        if (this.options.resolve) {
          (this.result.answers ??= []).push({
            at: Date.now(),
            count: body.count,
            address: new URL(origin).hostname,
          });
        }
      } else if (
        typeof consistency === "object" &&
        consistency.probePath === this.path &&
        body.number !== undefined
      )
        this.observe(body.number, floor, false);
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      this.fail(e.code ?? e.name, startedAt);
    }
  }

  private get path(): string {
    return this.options.path ?? "/";
  }

  /**
   * A number read after `floor` was the highest completed: the counter's must be larger (each
   * request increments it), a probe's must not be smaller.
   */
  private observe(value: number, floor: number, strict: boolean): void {
    if (strict ? value <= floor : value < floor) {
      this.result.counterContinuous = false;
      this.result.countWentBackBy = Math.max(this.result.countWentBackBy ?? 0, floor - value);
      if (this.result.counterViolations.length < 20)
        this.result.counterViolations.push({ expectedAbove: strict ? floor : floor - 1, got: value });
    }
    this.result.firstCount ??= value;
    this.highestCompleted = Math.max(this.highestCompleted, value);
    this.result.lastCount = this.highestCompleted;
  }

  /** The consistency probe on a path of its own: one request at a time, every 50 ms, until stopped. */
  private async probeLoop(probePath: string): Promise<void> {
    const probe = { requests: 0, answered: 0 };
    this.result.probe = probe;
    while (this.timer) {
      const floor = this.highestCompleted;
      probe.requests++;
      try {
        const res = await (
          await this.pool(await this.origin())
        ).request({
          method: "GET",
          path: probePath,
          headers: { accept: "application/json", ...this.options.headers },
        });
        const body = parseAnswer(await res.body.text());
        if (res.statusCode >= 200 && res.statusCode <= 299 && body.number !== undefined) {
          probe.answered++;
          this.observe(body.number, floor, false);
        }
      } catch {
        // a probe that gets no answer measures nothing; the traffic counts failures
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops sending and waits for the requests still in flight. Idempotent. */
  async stop(): Promise<TrafficResult> {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      // How long it sent (what "N sent at R/s for T s" means), not how long its last answers took.
      this.result.durationSeconds = (Date.now() - this.startedAt) / 1000;
      await Promise.all(this.inFlight);
      await Promise.all([...this.pools.values()].map((p) => p.close()));
      // Every outcome is counted by now: the stack gets the last seconds before the report exists.
      await this.options.figures?.close();
      this.done?.();
    }
    await this.finished;
    return this.result;
  }

  /** Resolves when a bound (count or time) ended the traffic, or stop() was called. */
  whenFinished(): Promise<TrafficResult> {
    return this.finished.then(() => this.result);
  }
}

/** servedBy's key for answers that do not name their instance (a service's own page). */
export const unnamedInstance = "(instance not named in the answer)";

/**
 * What drills read of an answer: JSON's `instanceId` and `count` where there are, and the number it
 * carries (the body itself, or JSON's `count`) for a consistency probe. Any other body is fine: a
 * 2xx is a success whatever it says.
 */
export function parseAnswer(text: string): { instanceId?: unknown; count?: unknown; number?: number } {
  const trimmed = text.trim();
  if (/^-?\d+(\.\d+)?$/.test(trimmed)) return { number: Number(trimmed) };
  try {
    const body = JSON.parse(trimmed) as unknown;
    if (body && typeof body === "object") {
      const { instanceId, count } = body as { instanceId?: unknown; count?: unknown };
      return { instanceId, count, ...(typeof count === "number" ? { number: count } : {}) };
    }
    if (typeof body === "number") return { number: body };
  } catch {
    // not JSON
  }
  return {};
}
