import type { StackClient } from "../local/control-plane/client.ts";
import type { TimedStackEvent } from "../local/events/bus.ts";
import { StayupError } from "../shared/errors.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import type { DrillReport } from "./report.ts";
import type { TrafficResult } from "./traffic.ts";
import { chooseRunInstance } from "./victim.ts";

export interface LatencyPercentiles {
  requests: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/** Latency percentiles of the requests sent in [from, to) (failed ones included: users waited too). */
export function latencyPercentiles(result: TrafficResult, from: number, to: number): LatencyPercentiles {
  const ms = result.latencies
    .filter((l) => l.sentAt >= from && l.sentAt < to)
    .map((l) => l.ms)
    .sort((a, b) => a - b);
  const at = (q: number) =>
    ms.length === 0 ? null : (ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)] ?? null);
  return {
    requests: ms.length,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: ms[ms.length - 1] ?? null,
  };
}

export interface GrayFaultOptions extends DrillOptions {
  /** How long the fault lasts before the drill clears it. */
  faultMs: number;
  /** The instance to fault; default: a healthy one at random. */
  instance?: string;
}

export const grayFaultDefaults: GrayFaultOptions = { ...drillDefaults, faultMs: 5000 };

/** The share of requests that may fail in a gray-failure drill (issue #13: 1 %). */
export const maxFailedShare = 0.01;

/** Instances the group replaced or terminated for any reason but scaling, after `since`. */
function replacedSince(events: readonly TimedStackEvent[], since: number, region: string): string[] {
  return events
    .filter(
      (e) =>
        e.type === "instance.terminating" &&
        e.reason !== "scale in" &&
        (e.region === undefined || e.region === region) &&
        Date.parse(e.time) >= since,
    )
    .map((e) => (e as { instanceId: string }).instanceId);
}

/**
 * One instance of the group gets a page fault (`/health` keeps passing) for `faultMs`, under steady
 * traffic. Reports when the load balancer took it out of rotation (outlier detection), when it came
 * back after the fault was cleared, the latency during the fault, and whether anything was replaced.
 */
export async function instanceFaultDrill(
  drill: string,
  client: StackClient,
  fault: { kind: "errors" | "latency" | "stall"; ms?: number; status?: number },
  opts: Partial<GrayFaultOptions> = {},
): Promise<DrillReport> {
  const o = { ...grayFaultDefaults, ...opts };
  const run = await DrillRun.start(client, o);
  const victim = await chooseRunInstance(run, o.instance);
  if (!victim || run.before.instances.filter((i) => i.healthy).length < 2) {
    await run.finish();
    throw new StayupError(
      `${drill} needs at least 2 healthy instances (one to fault, one to serve)`,
      "wait until `stayup status` shows them, or raise the group's desired capacity",
    );
  }
  const faultAt = Date.now();
  const what =
    fault.kind === "errors"
      ? `answers ${fault.status ?? 500}`
      : fault.kind === "stall"
        ? "stalls"
        : `answers ${fault.ms ?? 0} ms late`;
  run.mark("fault", `${victim.id} in ${victim.az}: GET / ${what}, /health passes`, faultAt);
  await client.fault("instance", {
    instance: victim.id,
    kind: fault.kind,
    ...(fault.ms === undefined ? {} : { ms: String(fault.ms) }),
    ...(fault.status === undefined ? {} : { status: String(fault.status) }),
  });
  run.progress(
    `${victim.id} (${victim.az}): GET / ${fault.kind}${fault.ms ? ` +${fault.ms} ms` : ""}; /health still passes`,
  );
  const isVictim = (e: TimedStackEvent) =>
    "instanceId" in e &&
    e.instanceId === victim.id &&
    (e.region === undefined || e.region === run.before.region);
  const ejected = await run.waitFor(
    (events) =>
      events.find((e) => e.type === "target.ejected" && isVictim(e) && Date.parse(e.time) >= faultAt),
    o.faultMs,
  );
  const ejectedAfterSeconds = ejected ? (Date.parse(ejected.time) - faultAt) / 1000 : null;
  if (ejected?.type === "target.ejected")
    run.mark("recovery", `${victim.id} ejected (${ejected.reason})`, Date.parse(ejected.time));
  run.progress(
    ejected?.type === "target.ejected"
      ? `out of rotation after ${ejectedAfterSeconds?.toFixed(2)} s (${ejected.reason}; for ${ejected.forMs / 1000} s)`
      : `still in rotation after ${o.faultMs / 1000} s`,
  );
  await run.sleep(Math.max(0, faultAt + o.faultMs - Date.now()));
  const clearedAt = Date.now();
  // The drill's own action, not the stack's recovery: a step.
  run.mark("step", "fault cleared", clearedAt);
  await client.fault("instance", { instance: victim.id, kind: "none" });
  run.progress("fault cleared; waiting for the instance to come back into rotation");
  const returned = ejected
    ? await run.waitFor(
        (events) =>
          events.find((e) => e.type === "target.returned" && isVictim(e) && Date.parse(e.time) >= clearedAt),
        o.recoveryTimeoutMs,
      )
    : undefined;
  const returnedAfterSeconds = returned ? (Date.parse(returned.time) - clearedAt) / 1000 : null;
  if (returned) run.mark("recovery", `${victim.id} back in rotation`, Date.parse(returned.time));
  if (ejected) {
    run.progress(
      returned
        ? `back in rotation ${returnedAfterSeconds?.toFixed(2)} s after the fault was cleared`
        : `not back in rotation within ${o.recoveryTimeoutMs / 1000} s`,
    );
  }
  const result = await run.finish();
  return run.report(drill, result, ejectedAfterSeconds, {
    victim: { id: victim.id, az: victim.az },
    fault: { ...fault, seconds: o.faultMs / 1000 },
    ejectedAfterSeconds,
    returnedAfterSeconds,
    latencyBeforeFault: latencyPercentiles(result, 0, faultAt),
    latencyDuringFault: latencyPercentiles(result, faultAt, clearedAt),
    replacedInstances: replacedSince(run.events, faultAt, run.before.region),
  });
}

/**
 * Every instance's path to Redis gets a fault for `faultMs` under steady traffic. Reports the
 * latency before, during and after, and what the balancer and group did (ideally: nothing).
 */
export async function redisFaultDrill(
  drill: string,
  client: StackClient,
  fault: { kind: "latency" | "hang"; ms?: number },
  opts: Partial<GrayFaultOptions> = {},
): Promise<DrillReport> {
  const o = { ...grayFaultDefaults, ...opts };
  const run = await DrillRun.start(client, o);
  const faultAt = Date.now();
  run.mark(
    "fault",
    `path to Redis: ${fault.kind === "hang" ? "commands hang" : `+${fault.ms ?? 0} ms per command`}`,
    faultAt,
  );
  const applied = await client.fault("redis", {
    kind: fault.kind,
    ...(fault.ms === undefined ? {} : { ms: String(fault.ms) }),
  });
  run.progress(
    `path to Redis: ${fault.kind}${fault.ms ? ` +${fault.ms} ms` : ""} on ${(applied.instances as string[]).length} instances`,
  );
  await run.sleep(o.faultMs);
  const clearedAt = Date.now();
  run.mark("step", "fault cleared", clearedAt);
  await client.fault("redis", { kind: "none" });
  run.progress("fault cleared");
  const result = await run.finish();
  const before = latencyPercentiles(result, 0, faultAt);
  // Recovered: the first request sent after the clear that was as fast as before the fault.
  const normalMs = Math.max(20, 2 * (before.p99Ms ?? 0));
  const firstNormal = result.latencies
    .filter((l) => l.sentAt >= clearedAt && l.ms <= normalMs)
    .sort((a, b) => a.sentAt - b.sentAt)[0];
  const recoverySeconds = firstNormal ? (firstNormal.sentAt + firstNormal.ms - clearedAt) / 1000 : null;
  // This drill's recovery counts from the clearing: the impact window runs from the fault to it.
  run.timeline.countRecoveryFrom(clearedAt);
  if (firstNormal)
    run.mark("recovery", "pages as fast as before the fault", firstNormal.sentAt + firstNormal.ms);
  const ejections = run.events.filter((e) => e.type === "target.ejected" && Date.parse(e.time) >= faultAt);
  return run.report(drill, result, recoverySeconds, {
    fault: { ...fault, seconds: o.faultMs / 1000 },
    latencyBeforeFault: before,
    latencyDuringFault: latencyPercentiles(result, faultAt, clearedAt),
    latencyAfterFault: latencyPercentiles(result, clearedAt, Number.POSITIVE_INFINITY),
    ejectedInstances: ejections.map((e) => (e as { instanceId: string }).instanceId),
    replacedInstances: replacedSince(run.events, faultAt, run.before.region),
  });
}

export const formatLatency = (l: LatencyPercentiles | undefined): string =>
  !l || l.requests === 0
    ? "no requests"
    : `p50 ${l.p50Ms} ms, p90 ${l.p90Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms (${l.requests} requests)`;

/** At most 1 % failed, the count continued, the bad instance left rotation and came back, nothing replaced. */
export const instanceFaultVerdict = (r: DrillReport): boolean =>
  r.failed <= maxFailedShare * r.requests &&
  r.counterContinuous &&
  r.recoverySeconds !== null && // the bad instance's ejection: these drills' recovery
  r.returnedAfterSeconds !== null &&
  (r.replacedInstances as string[]).length === 0;
