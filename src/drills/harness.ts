import type { StackClient } from "../local/control-plane/client.ts";
import type { TimedStackEvent } from "../local/events/bus.ts";
import type { StackStatus } from "../local/runtime.ts";
import { sleep } from "../shared/net.ts";
import { ClientFigures } from "./client-figures.ts";
import { basicTargets, type DrillReport, type DrillTarget, withVerdict } from "./report.ts";
import { type TimelineMark, TimelineRecorder } from "./timeline.ts";
import { SteadyTraffic, type TrafficOptions, type TrafficResult } from "./traffic.ts";
import type { ServiceTraffic } from "../stack/index.ts";

/** A drill stopped before its end (a signal, or its caller gave up): thrown from its next wait. */
export class DrillInterrupted extends Error {
  constructor(readonly reason: string) {
    super(`drill interrupted (${reason})`);
  }
}

/**
 * How a drill's caller interrupts it: the run's waits throw DrillInterrupted once `interrupt` is
 * called, and `run` is the drill's run (once started), for the partial report.
 */
export class DrillInterruption {
  private readonly controller = new AbortController();
  run?: DrillRun;
  reason?: string;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get interrupted(): boolean {
    return this.reason !== undefined;
  }

  interrupt(reason: string): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.controller.abort(new DrillInterrupted(reason));
  }

  throwIfInterrupted(): void {
    if (this.reason !== undefined) throw new DrillInterrupted(this.reason);
  }

  /** `work`, or DrillInterrupted as soon as the drill is interrupted (`work` is then left to end unheard). */
  race<T>(work: Promise<T>): Promise<T> {
    if (this.reason !== undefined) {
      work.catch(() => undefined);
      return Promise.reject(new DrillInterrupted(this.reason));
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        work.catch(() => undefined);
        reject(new DrillInterrupted(this.reason ?? "interrupted"));
      };
      this.signal.addEventListener("abort", onAbort, { once: true });
      work.then(
        (value) => {
          this.signal.removeEventListener("abort", onAbort);
          resolve(value);
        },
        (error: unknown) => {
          this.signal.removeEventListener("abort", onAbort);
          reject(error);
        },
      );
    });
  }
}

export interface DrillOptions {
  /** Requests per second during the drill. */
  rate: number;
  /** Traffic before the fault, to see the steady state. */
  warmupMs: number;
  /** Traffic after recovery, to see the recovered state. */
  cooldownMs: number;
  /** Give up waiting for recovery after this long. */
  recoveryTimeoutMs: number;
  onProgress?: (message: string) => void;
  /** Lets the caller stop the drill at any wait (see DrillInterruption). */
  interruption?: DrillInterruption;
  /** Where traffic goes (`stayup drill --path`); default: the description's webService.trafficPath. */
  trafficPath?: string;
  /** Who the traffic is, as the dashboard names its client-side figures ("drill region-outage"). */
  clientName?: string;
}

/**
 * Where a run's traffic goes and what it can measure there: the counter's own page carries its
 * count; another service's answers carry nothing stayup can read, unless it offers a consistency
 * probe (`webService.consistencyProbePath`). `notMeasured` says why a figure is missing.
 */
export function trafficPlan(
  service: ServiceTraffic | undefined,
  pathOverride: string | undefined,
): {
  path: string;
  consistency: NonNullable<TrafficOptions["consistency"]>;
  notMeasured: Record<string, string>;
} {
  const s = service ?? { service: "counter", trafficPath: "/" };
  const path = pathOverride ?? s.trafficPath;
  if (s.consistencyProbePath)
    return { path, consistency: { probePath: s.consistencyProbePath }, notMeasured: {} };
  if (s.service === "counter" && path === "/") return { path, consistency: "counter", notMeasured: {} };
  const why =
    s.service === "counter"
      ? `traffic goes to ${path}, not the counter's page / (whose answers carry the count)`
      : "your service's answers carry no number stayup can read: set webService.consistencyProbePath to a path answering one that must never go back";
  return { path, consistency: "none", notMeasured: { counterContinuous: why, acknowledgedLost: why } };
}

/**
 * One event applied to the set of healthy target ids: a target that passes joins it; one that
 * fails, drains, is deregistered or whose instance ends leaves it. (The drills' capacity counts.)
 */
export function trackHealthyTargets(healthy: Set<string>, e: TimedStackEvent): void {
  if (e.type === "target.healthy") healthy.add(e.instanceId);
  if (
    e.type === "target.unhealthy" ||
    e.type === "target.draining" ||
    e.type === "target.deregistered" ||
    e.type === "instance.terminated"
  ) {
    healthy.delete(e.instanceId);
  }
}

export const drillDefaults: DrillOptions = {
  rate: 200,
  warmupMs: 1500,
  cooldownMs: 1500,
  recoveryTimeoutMs: 30_000,
};

/**
 * One drill run: steady traffic through the stack's listener and the stack's event stream, both
 * bounded in time. Drills inject a fault, wait for a recovery condition over the events, then
 * report in the shared shape.
 */
export class DrillRun {
  readonly events: TimedStackEvent[] = [];
  private readonly abort = new AbortController();
  private notify: () => void = () => undefined;
  private readonly reading: Promise<void>;
  readonly traffic: SteadyTraffic;
  readonly options: DrillOptions;
  /** Every request of the run in 100 ms buckets, and the run's fault and recovery marks. */
  readonly timeline = new TimelineRecorder();
  /** Where the traffic goes and what it measures (see trafficPlan). */
  readonly plan: ReturnType<typeof trafficPlan>;
  /**
   * What this run started in the stack that no fault lease restores (a roll), with what undoes it
   * when the drill is interrupted (see undoOnInterrupt).
   */
  private readonly undos = new Map<symbol, { what: string; undo: () => Promise<string> }>();

  private constructor(
    readonly client: StackClient,
    readonly before: StackStatus,
    options: DrillOptions,
    url: string,
    traffic: Partial<TrafficOptions>,
  ) {
    this.options = options;
    this.reading = (async () => {
      for await (const e of client.events(this.abort.signal)) {
        // This run's own figures (and another client's) are no stack event: the report has its own.
        if (e.type === "client.traffic") continue;
        this.events.push(e);
        this.notify();
      }
    })().catch(() => undefined);
    const maxDurationMs = options.warmupMs + options.recoveryTimeoutMs * 2 + options.cooldownMs + 10_000;
    this.plan = trafficPlan(before.service, options.trafficPath);
    this.traffic = new SteadyTraffic(url, {
      timeline: this.timeline,
      path: this.plan.path,
      consistency: this.plan.consistency,
      figures: this.clientFigures(),
      ...traffic,
      rate: options.rate,
      maxDurationMs,
      maxRequests: Math.ceil((options.rate * maxDurationMs) / 1000),
    });
  }

  static async start(
    client: StackClient,
    options: DrillOptions,
    traffic: Partial<TrafficOptions> = {},
    url = client.state.listener,
  ): Promise<DrillRun> {
    options.interruption?.throwIfInterrupted();
    const run = new DrillRun(client, await client.status(), options, url, traffic);
    if (options.interruption) options.interruption.run = run;
    run.traffic.start();
    run.progress(`sending ${options.rate} requests/s to ${url}${run.plan.path === "/" ? "" : run.plan.path}`);
    for (const [figure, why] of Object.entries(run.plan.notMeasured))
      run.progress(`${figure} not measured: ${why}`);
    await run.sleep(options.warmupMs);
    return run;
  }

  /**
   * Figures of this run's traffic (or, with `part`, of other traffic it sends: cpu-spike's load) for
   * the stack's dashboard, counted client-side, where refused connections happen.
   */
  clientFigures(part?: string): ClientFigures {
    const name = this.options.clientName ?? "drill";
    return new ClientFigures(part ? `${name} (${part})` : name, (report) =>
      this.client.reportClientTraffic(report),
    );
  }

  /**
   * Something this run started in the stack that no fault lease restores (a roll): if the drill is
   * interrupted before the returned function is called, `undo` runs (interruptedReport), its
   * traffic still flowing so that the partial report shows what clients saw meanwhile. `undo` says
   * what it did (a timeline mark, and the report's `interrupted.undone`), or throws why it could not.
   */
  undoOnInterrupt(what: string, undo: () => Promise<string>): () => void {
    const key = Symbol(what);
    this.undos.set(key, { what, undo });
    return () => {
      this.undos.delete(key);
    };
  }

  /** Waits `ms`, or throws DrillInterrupted as soon as the drill is interrupted. */
  sleep(ms: number): Promise<void> {
    const interruption = this.options.interruption;
    return interruption ? interruption.race(sleep(ms)) : sleep(ms);
  }

  progress(message: string): void {
    this.options.onProgress?.(message);
  }

  /**
   * Marks the moment the drill broke something (`at` is the time recoverySeconds counts from),
   * a recovery it observed, or another step; the report's timeline carries them.
   */
  mark(kind: TimelineMark["kind"], label: string, at = Date.now()): void {
    this.timeline.mark(kind, label, at);
  }

  /** Waits until `condition` over the events holds; returns its value, or undefined on timeout. */
  async waitFor<T>(
    condition: (events: readonly TimedStackEvent[]) => T | undefined,
    timeoutMs: number,
  ): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    this.options.interruption?.throwIfInterrupted();
    let value = condition(this.events);
    while (value === undefined && Date.now() < deadline) {
      await Promise.race([new Promise<void>((r) => (this.notify = r)), sleep(100)]);
      this.options.interruption?.throwIfInterrupted();
      value = condition(this.events);
    }
    return value;
  }

  /**
   * The first moment after `since` at which the group had `desired` healthy targets again,
   * counting from the healthy targets before the drill and the events since.
   */
  capacityRestored(
    since: number,
    desired: number,
    region = this.before.region,
  ): (events: readonly TimedStackEvent[]) => number | undefined {
    return (events) => {
      const before = this.before.regions?.find((r) => r.name === region)?.instances ?? this.before.instances;
      const healthy = new Set(before.filter((i) => i.healthy).map((i) => i.id));
      let droppedAfterFault = false;
      for (const e of events) {
        if (e.region !== undefined && e.region !== region) continue;
        trackHealthyTargets(healthy, e);
        const t = Date.parse(e.time);
        if (t < since) continue;
        if (healthy.size < desired) droppedAfterFault = true;
        else if (droppedAfterFault) return t;
      }
      return undefined;
    };
  }

  async finish(): Promise<TrafficResult> {
    await this.sleep(this.options.cooldownMs);
    const result = await this.traffic.stop();
    this.abort.abort();
    await this.reading;
    return result;
  }

  /**
   * The report of a run interrupted before its end: what the traffic saw until then, the events,
   * and a verdict that fails on "the drill ran to its end". First undoes what the run started that
   * no lease restores (undoOnInterrupt), under traffic; then stops the run's traffic.
   */
  async interruptedReport(drill: string, reason: string): Promise<DrillReport> {
    // When it was interrupted, not when its last answers came in (they may take seconds).
    const interruptedAt = Date.now();
    this.mark("step", `interrupted (${reason})`, interruptedAt);
    const undone: string[] = [];
    const notUndone: string[] = [];
    for (const { what, undo } of this.undos.values()) {
      try {
        const said = await undo();
        undone.push(said);
        this.mark("recovery", said);
      } catch (error) {
        notUndone.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.undos.clear();
    const result = await this.traffic.stop();
    this.abort.abort();
    await this.reading;
    const target: DrillTarget = {
      target: "the drill ran to its end",
      passed: false,
      actual: [
        `interrupted (${reason}) after ${((interruptedAt - this.timeline.startedAt) / 1000).toFixed(1)} s; faults it injected cleared`,
        ...undone,
        ...notUndone.map((n) => `NOT undone: ${n}`),
      ].join("; "),
    };
    return this.report(
      drill,
      result,
      null,
      {
        interrupted: {
          reason,
          at: new Date(interruptedAt).toISOString(),
          ...(undone.length > 0 ? { undone } : {}),
          ...(notUndone.length > 0 ? { notUndone } : {}),
        },
      },
      (r) => [target, ...basicTargets(r)],
    );
  }

  /**
   * Failures grouped into windows (gaps under 500 ms merged), in seconds from the start of the
   * drill's traffic: the origin of its timeline, its fault and recovery marks and its failures
   * table, in every drill (issue 25 item 6: one origin, not the fault's in some reports).
   */
  failureWindows(result: TrafficResult): { fromSeconds: number; toSeconds: number; failures: number }[] {
    const since = this.timeline.startedAt;
    const windows: { from: number; to: number; failures: number }[] = [];
    for (const t of [...result.failureTimes].sort((a, b) => a - b)) {
      const last = windows[windows.length - 1];
      if (last && t - last.to < 500) {
        last.to = t;
        last.failures++;
      } else windows.push({ from: t, to: t, failures: 1 });
    }
    return windows.map((w) => ({
      fromSeconds: (w.from - since) / 1000,
      toSeconds: (w.to - since) / 1000,
      failures: w.failures,
    }));
  }

  /**
   * The report in the shared shape, with the timeline and the events of the run. Its verdict holds
   * `targets(report)`, evaluated after `adjust` (for drills that add other traffic to the figures).
   */
  report(
    drill: string,
    result: TrafficResult,
    recoverySeconds: number | null,
    extra: Record<string, unknown>,
    targets: (report: DrillReport) => DrillTarget[] = basicTargets,
    adjust?: (report: DrillReport) => void,
  ): DrillReport {
    const startedAt = this.timeline.startedAt;
    const report: DrillReport = {
      drill,
      requests: result.requests,
      failed: result.failed,
      recoverySeconds,
      counterContinuous: result.counterContinuous,
      rate: this.options.rate,
      durationSeconds: result.durationSeconds,
      failures: result.failures,
      servedBy: result.servedBy,
      counter: { first: result.firstCount, last: result.lastCount },
      trafficPath: this.plan.path,
      ...(typeof this.plan.consistency === "object"
        ? { consistencyProbe: { path: this.plan.consistency.probePath, ...result.probe } }
        : {}),
      ...(Object.keys(this.plan.notMeasured).length > 0 ? { notMeasured: { ...this.plan.notMeasured } } : {}),
      ...extra,
      counterViolations: result.counterViolations,
      timeline: this.timeline.build(recoverySeconds),
      events: this.events.filter((e) => Date.parse(e.time) >= startedAt),
      verdict: { passed: false, targets: [] },
    };
    adjust?.(report);
    return withVerdict(report, targets(report));
  }
}
