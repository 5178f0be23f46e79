import type { StackClient } from "../local/control-plane/client.ts";
import type { TimedStackEvent } from "../local/events/bus.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import { basicTargets, type DrillReport, type DrillTarget } from "./report.ts";
import { defineDrill } from "./module.ts";
import { SteadyTraffic } from "./traffic.ts";
import { loadSecretHeader } from "../web-service/load-secret.ts";

export interface CpuSpikeOptions extends DrillOptions {
  /** CPU each load request costs on the instance that serves it. */
  cpuMsPerRequest: number;
  /** Load as a multiple of what the current capacity can carry at the CPU target. */
  overload: number;
  /** How long the load keeps going after the scale-out, before it stops. */
  holdAfterScaleOutMs: number;
  targetCpuPercent: number;
}

/** The group's (or, on ecs, the service's) desired count changed. */
type CapacityChanged = Extract<
  TimedStackEvent,
  { type: "group.capacity-changed" | "service.desired-count-changed" }
>;
const isCapacityChange = (e: TimedStackEvent): e is CapacityChanged =>
  e.type === "group.capacity-changed" || e.type === "service.desired-count-changed";

/**
 * Sends CPU-heavy requests that need more than the group's capacity at its CPU target, on top of
 * steady counter traffic: the group (on ecs, the service's task count) must scale out (new
 * instance or task in rotation), then scale back in once the load stops, with no failed request
 * throughout.
 */
export async function cpuSpikeDrill(
  client: StackClient,
  opts: Partial<CpuSpikeOptions> = {},
): Promise<DrillReport> {
  const o: CpuSpikeOptions = {
    ...drillDefaults,
    cpuMsPerRequest: 20,
    overload: 1.6,
    holdAfterScaleOutMs: 2000,
    targetCpuPercent: 50,
    recoveryTimeoutMs: 40_000,
    ...opts,
  };
  const run = await DrillRun.start(client, o);
  const startDesired = run.before.group.desired;
  // Load rate that needs `overload` times the CPU the group may use at its target.
  const loadRate = Math.ceil(
    (o.overload * startDesired * (o.targetCpuPercent / 100)) / (o.cpuMsPerRequest / 1000),
  );
  const load = new SteadyTraffic(client.state.listener, {
    rate: loadRate,
    path: `/load?cpuMs=${o.cpuMsPerRequest}`,
    // Instances serve /load only to the holder of the stack's load secret (its state file).
    headers: client.state.loadSecret ? { [loadSecretHeader]: client.state.loadSecret } : undefined,
    maxDurationMs: o.recoveryTimeoutMs,
    maxRequests: loadRate * Math.ceil(o.recoveryTimeoutMs / 1000),
    connections: 64,
    timeline: run.timeline,
    figures: run.clientFigures("load"),
  });
  const loadStart = Date.now();
  load.start();
  run.mark("fault", `CPU load ${o.overload}× capacity`, loadStart);
  run.progress(
    `load: ${loadRate} requests/s × ${o.cpuMsPerRequest} ms CPU (${o.overload}× the group's capacity at ${o.targetCpuPercent} % CPU)`,
  );

  // Scaled out: the desired capacity rose, and an instance (ecs: a task) started after that is in
  // rotation.
  const scaledOut = await run.waitFor((events) => {
    const raised = events.find(
      (e): e is CapacityChanged =>
        isCapacityChange(e) && e.desired > startDesired && Date.parse(e.time) >= loadStart,
    );
    if (!raised) return undefined;
    const launched = new Set(
      events.flatMap((e) =>
        e.seq <= raised.seq
          ? []
          : e.type === "instance.launched"
            ? [e.instanceId]
            : e.type === "task.running"
              ? [e.taskId]
              : [],
      ),
    );
    const healthy = events.find((e) => e.type === "target.healthy" && launched.has(e.instanceId));
    return healthy ? { raised, healthy } : undefined;
  }, o.recoveryTimeoutMs);
  const scaleOutSeconds = scaledOut ? (Date.parse(scaledOut.healthy.time) - loadStart) / 1000 : null;
  if (scaledOut)
    run.mark(
      "recovery",
      `scaled out to ${scaledOut.raised.desired}, new instance in rotation`,
      Date.parse(scaledOut.healthy.time),
    );
  run.progress(
    scaledOut
      ? `scaled out to ${scaledOut.raised.desired}; new instance in rotation ${scaleOutSeconds?.toFixed(2)} s after the load started`
      : "no scale-out",
  );
  if (scaledOut) await run.sleep(o.holdAfterScaleOutMs);
  const loadResult = await load.stop();
  const loadStoppedAt = Date.now();
  run.mark("step", "load stopped", loadStoppedAt);
  run.progress("load stopped; waiting for scale-in");

  const scaledIn = scaledOut
    ? await run.waitFor(
        (events) =>
          events.find(
            (e) => isCapacityChange(e) && e.desired === startDesired && Date.parse(e.time) >= loadStoppedAt,
          ),
        o.recoveryTimeoutMs,
      )
    : undefined;
  const scaleInSeconds = scaledIn ? (Date.parse(scaledIn.time) - loadStoppedAt) / 1000 : null;
  if (scaledIn) run.mark("recovery", `scaled back in to ${startDesired}`, Date.parse(scaledIn.time));
  run.progress(
    scaledIn ? `scaled back in to ${startDesired} after ${scaleInSeconds?.toFixed(2)} s` : "no scale-in",
  );
  const result = await run.finish();
  return run.report(
    "cpu-spike",
    result,
    scaleOutSeconds,
    {
      startDesired,
      peakDesired: scaledOut?.raised.desired ?? startDesired,
      scaleInSeconds,
      load: {
        rate: loadRate,
        cpuMsPerRequest: o.cpuMsPerRequest,
        requests: loadResult.requests,
        failed: loadResult.failed,
        // How long it sent: its requests still in flight then are answered after.
        durationSeconds: loadResult.durationSeconds,
      },
      // When failures happened, in seconds from the start of the traffic: steady traffic, then the load's.
      failureWindows: run.failureWindows(result),
      loadFailureWindows: run.failureWindows(loadResult),
    },
    cpuSpikeTargets,
    // What users saw includes the heavy requests.
    (report) => {
      report.requests += loadResult.requests;
      report.failed += loadResult.failed;
      for (const [k, v] of Object.entries(loadResult.failures))
        report.failures[k] = (report.failures[k] ?? 0) + v;
    },
  );
}

/** This drill's targets, checked against a run's report. */
export const cpuSpikeTargets = (r: DrillReport): DrillTarget[] => [
  ...basicTargets(r),
  {
    target: "scaled back in after the load",
    passed: r.scaleInSeconds !== null,
    actual: r.scaleInSeconds === null ? "never" : `${(r.scaleInSeconds as number).toFixed(2)} s`,
  },
];

export const cpuSpike = defineDrill({
  name: "cpu-spike",
  counterOnly: "the CPU load is the counter's own /load page",
  description: "CPU load beyond the group's capacity: it scales out, then back in when the load stops",
  topologies: {
    "load-balanced": true,
    "single-instance": {
      unsupported:
        "a group of one (min = max = 1) cannot scale out, and its instance serves no /load endpoint (each load request answers 404)",
      instead: "run `stayup drill cpu-spike --topology load-balanced`",
    },
    // Service auto scaling adds tasks (CPU target tracking, as on AWS); tasks only slow during the
    // overload are held, not replaced (decideService).
    ecs: true,
  },
  run: ({ client, stack, rate, onProgress, harness }) =>
    cpuSpikeDrill(client, {
      ...harness,
      rate,
      onProgress,
      targetCpuPercent: stack.scaling.targetCpuPercent,
    }),
  details: (report) => [
    `capacity             ${report.startDesired} → ${report.peakDesired} → ${report.scaleInSeconds === null ? "not scaled in" : report.startDesired}`,
    `scale-out in service ${report.recoverySeconds === null ? "never" : `${report.recoverySeconds.toFixed(2)} s after the load started`}`,
    `scale-in             ${report.scaleInSeconds === null ? "never" : `${(report.scaleInSeconds as number).toFixed(2)} s after the load stopped`}`,
  ],
  passed: (r) => cpuSpikeTargets(r).every((t) => t.passed),
});
