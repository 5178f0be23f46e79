import type { StackClient } from "../local/control-plane/client.ts";
import type { TimedStackEvent } from "../local/events/bus.ts";
import { StayupError } from "../shared/errors.ts";
import { type DrillOptions, DrillRun, drillDefaults, trackHealthyTargets } from "./harness.ts";
import { counterTarget, type DrillReport, recoveredTarget, type DrillTarget } from "./report.ts";
import { Option } from "commander";
import { defineDrill } from "./module.ts";

/**
 * Takes the whole primary region down (its load balancer and every instance) under traffic from
 * clients that resolve the application's name through the local DNS server, then brings it back.
 * The health check fails, the alarm starts the secondary region and DNS sends clients there; on
 * recovery DNS fails back and the secondary returns to its standby size, each with a notification.
 */
export async function regionOutageDrill(
  client: StackClient,
  opts: Partial<DrillOptions & { outageMs: number }> = {},
): Promise<DrillReport> {
  const o = { ...drillDefaults, outageMs: 3000, ...opts };
  const status = await client.status();
  const secondary = status.regions.find((r) => r.role === "secondary");
  if (!status.dns || !secondary) {
    throw new StayupError(
      "this stack has no secondary region or DNS failover",
      "add regions.secondary and dns to stayup.config.ts (the default description has both)",
    );
  }
  const [dnsHost, dnsPort] = status.dns.server.split(":");
  const listenerPort = Number(new URL(status.listener).port);
  const standby = secondary.group.desired;
  const run = await DrillRun.start(client, o, {
    resolve: { name: status.dns.name, server: `${dnsHost}:${dnsPort}`, port: listenerPort },
  });
  run.progress(`clients resolve ${status.dns.name} through udp://${status.dns.server}`);

  // What crosses regions, and how far the secondary's copy trailed just before the fault.
  const crossRegion = (await client.status()).redis.crossRegion;
  const crossRegionMode = crossRegion?.mode ?? "none";
  const replicationLagMs = crossRegion?.replicationLagMs ?? null;
  run.progress(
    crossRegionMode === "replica"
      ? `${secondary.name}'s Redis replicates ${status.region}'s (lag ${replicationLagMs ?? "unknown"} ms)`
      : `nothing of Redis crosses regions: ${secondary.name} counts from what it holds`,
  );
  const faultAt = Date.now();
  run.mark("fault", `${status.region} down`, faultAt);
  await client.fault("region-outage", { region: status.region });
  run.progress(`${status.region} is down (load balancer and every instance)`);
  // Recovered: the alarm scaled the secondary up and it has that capacity in rotation.
  const failover = await run.waitFor(
    (events) =>
      events.find(
        (e) => e.type === "failover.action" && e.action === "failover" && Date.parse(e.time) >= faultAt,
      ),
    o.recoveryTimeoutMs,
  );
  const desired = failover?.type === "failover.action" ? failover.desired : 0;
  if (failover) run.mark("recovery", `alarm: failover to ${secondary.name}`, Date.parse(failover.time));
  // Serving: DNS answers the secondary and it has the failover's capacity in rotation. From an
  // active standby (already at that capacity) nothing drops or rises: the DNS answer decides.
  const secondaryHost = new URL(secondary.listener).hostname;
  const healthyBefore = secondary.instances.filter((i) => i.healthy).map((i) => i.id);
  const inRotationAt = failover
    ? await run.waitFor(
        (events) =>
          secondaryServingAt(events, {
            since: faultAt,
            region: secondary.name,
            host: secondaryHost,
            desired,
            healthyBefore,
          }),
        o.recoveryTimeoutMs,
      )
    : undefined;
  const recoverySeconds = inRotationAt === undefined ? null : (inRotationAt - faultAt) / 1000;
  if (inRotationAt !== undefined)
    run.mark("recovery", `${secondary.name} serving with ${desired}`, inRotationAt);
  run.progress(
    recoverySeconds === null
      ? "the secondary region never took over"
      : `${secondary.name} serving with ${desired} instance(s) ${recoverySeconds.toFixed(2)} s after the outage began`,
  );

  await run.sleep(o.outageMs);
  const restoreAt = Date.now();
  run.mark("step", `${status.region} restored`, restoreAt);
  await client.fault("region-restore", { region: status.region });
  run.progress(`${status.region} is back; waiting for failback`);
  const failback = await run.waitFor(
    (events) =>
      events.find(
        (e) => e.type === "failover.action" && e.action === "failback" && Date.parse(e.time) >= restoreAt,
      ),
    o.recoveryTimeoutMs,
  );
  if (failback) run.mark("recovery", `failback to ${status.region}`, Date.parse(failback.time));
  // The secondary back at standby: its instances drained (scale-in by SIGTERM).
  let standbyAt: number | undefined;
  const deadline = Date.now() + o.recoveryTimeoutMs;
  while (failback && standbyAt === undefined && Date.now() < deadline) {
    const r = (await client.status()).regions.find((x) => x.name === secondary.name);
    if (r && r.group.desired === standby && r.instances.length === standby) standbyAt = Date.now();
    else await run.sleep(200);
  }
  if (standbyAt !== undefined) {
    run.progress(`${secondary.name} back to its standby size (${standby})`);
    run.mark("recovery", `${secondary.name} back to standby`, standbyAt);
  }
  const result = await run.finish();
  const phases = regionOutagePhases(run.events, {
    faultAt,
    restoreAt,
    primary: status.region,
    secondaryHost,
    servedAt: lastFailureBefore(result.failureTimes, restoreAt),
  });
  for (const [label, seconds] of [
    ["detection: the primary failed its health check", phases.detectionSeconds],
    [`DNS answers ${secondary.name}`, phases.dnsSeconds],
  ] as const) {
    if (seconds !== null) run.mark("recovery", label, faultAt + seconds * 1000);
  }
  // Seconds from the start of the traffic, as the report's timeline (issue 25: they were from the fault).
  const windows = run.failureWindows(result);
  // Failures at failover and (fewer) at failback: how long clients saw them, the windows summed.
  const outageSeconds = windows.reduce((sum, w) => sum + (w.toSeconds - w.fromSeconds), 0);
  const primaryHost = new URL(status.listener).hostname;
  const counts = countAcrossRegions(
    result.answers ?? [],
    primaryHost,
    new URL(secondary.listener).hostname,
    result.countWentBackBy ?? 0,
  );
  const caughtUp = run.events.find(
    (e) => e.type === "redis.cross-region-failback" && Date.parse(e.time) >= restoreAt,
  );
  if (crossRegionMode === "replica") {
    run.progress(
      `acknowledged counts lost: ${counts.lostOnFailover ?? "unknown"} on failover (lag before it ${replicationLagMs ?? "unknown"} ms), ${counts.lostOnFailback ?? "unknown"} on failback`,
    );
  } else if (counts.countWentBackBy > 0) {
    run.progress(
      `the count went back by ${counts.countWentBackBy}: ${secondary.name} counted from its own copy`,
    );
  }
  const notifications = run.events
    .filter((e) => e.type === "notification.sent" && Date.parse(e.time) >= faultAt)
    .map((e) => (e.type === "notification.sent" ? e.subject : ""));
  return run.report(
    "region-outage",
    result,
    recoverySeconds,
    {
      outageSeconds,
      failureWindows: windows,
      phases,
      // What the local region health check needs to call a region down, and what it must outlast.
      regionDetectionSeconds: status.dns.regionDetectionMs / 1000,
      inRegionBudgetSeconds: status.dns.inRegionBudgetMs / 1000,
      ttlSeconds: status.dns.ttlSeconds,
      primaryRegion: status.region,
      secondaryRegion: secondary.name,
      secondaryStartedByAlarm: Boolean(failover),
      failedBack: Boolean(failback),
      secondaryBackToStandby: standbyAt !== undefined,
      standbyCapacity: standby,
      notifications,
      resolvedAddresses: run.traffic.resolvedAddresses,
      crossRegion: crossRegionMode,
      replicationLagMs,
      acknowledgedLost:
        counts.lostOnFailover === null && counts.lostOnFailback === null
          ? null
          : (counts.lostOnFailover ?? 0) + (counts.lostOnFailback ?? 0),
      acknowledgedLostOnFailover: counts.lostOnFailover,
      acknowledgedLostOnFailback: counts.lostOnFailback,
      countWentBackBy: counts.countWentBackBy,
      countsByRegion: counts.byRegion,
      primaryCaughtUpBeforeWrites: crossRegionMode === "replica" ? Boolean(caughtUp) : null,
    },
    regionOutageTargets,
  );
}

/** What a local standby may take to start and pass its checks (a process, not an EC2 boot). */
export const LOCAL_STANDBY_START_ALLOWANCE_SECONDS = 5;

/**
 * When the secondary region serves the clients a region outage moved: the first moment from `since`
 * at which DNS answers its host and at least `desired` of its targets are healthy (counting from
 * those healthy before the drill and the target events since). Pure, over the drill's events.
 * A pilot light serves once its new instances pass; an active standby, already at capacity, as
 * soon as DNS answers it (issue 24: the drill waited for a capacity drop that never comes).
 */
export function secondaryServingAt(
  events: readonly TimedStackEvent[],
  at: { since: number; region: string; host: string; desired: number; healthyBefore: readonly string[] },
): number | undefined {
  const healthy = new Set(at.healthyBefore);
  let answered = false;
  for (const e of events) {
    if (e.type === "dns.health-changed") answered = e.answer === at.host;
    if (e.region === at.region) trackHealthyTargets(healthy, e);
    const t = Date.parse(e.time);
    if (t >= at.since && answered && at.desired > 0 && healthy.size >= at.desired) return t;
  }
  return undefined;
}

export interface RegionOutagePhases {
  /** Each from the fault, in seconds; null if it did not happen before the region was restored. */
  detectionSeconds: number | null;
  alarmSeconds: number | null;
  /** The failover action resized the secondary group (the Lambda's run on AWS). */
  standbyStartSeconds: number | null;
  dnsSeconds: number | null;
  /** The last failure clients saw before the restore: from then on the secondary served them. */
  clientsServedSeconds: number | null;
}

const lastFailureBefore = (failureTimes: number[], until: number): number | undefined => {
  const before = failureTimes.filter((t) => t < until);
  return before.length ? Math.max(...before) : undefined;
};

/** The drill's timeline split as the failover model splits AWS's: detection, alarm, standby start, DNS. */
export function regionOutagePhases(
  events: readonly TimedStackEvent[],
  at: { faultAt: number; restoreAt: number; primary: string; secondaryHost: string; servedAt?: number },
): RegionOutagePhases {
  const first = (match: (e: TimedStackEvent) => boolean): number | null => {
    const e = events.find((x) => {
      const t = Date.parse(x.time);
      return t >= at.faultAt && t < at.restoreAt && match(x);
    });
    return e ? (Date.parse(e.time) - at.faultAt) / 1000 : null;
  };
  return {
    detectionSeconds: first((e) => e.type === "dns.health-changed" && e.region === at.primary && !e.healthy),
    alarmSeconds: first((e) => e.type === "alarm.state-changed" && e.state === "ALARM"),
    standbyStartSeconds: first((e) => e.type === "failover.action" && e.action === "failover"),
    dnsSeconds: first((e) => e.type === "dns.health-changed" && e.answer === at.secondaryHost),
    clientsServedSeconds: at.servedAt === undefined ? 0 : Math.max(0, (at.servedAt - at.faultAt) / 1000),
  };
}

/** This drill's targets, checked against a run's report. */
/**
 * This drill's targets, checked against a run's report. With a cross-region replica the count must
 * stay continuous: nothing lost on the planned failback, on failover no more than the lag allowed
 * at this rate. With `none` the secondary counts from its own copy by design: the reset is
 * reported (counterContinuous, countWentBackBy), not a target.
 */
export const regionOutageTargets = (r: DrillReport): DrillTarget[] => {
  // Detection, one TTL, and the standby's start: the time the settings allow, not a fixed figure.
  const allowed =
    (r.regionDetectionSeconds as number) + (r.ttlSeconds as number) + LOCAL_STANDBY_START_ALLOWANCE_SECONDS;
  return [
    recoveredTarget(r),
    ...(r.crossRegion === "replica" ? replicaTargets(r) : []),
    {
      target: `clients see failures for ${allowed} s at most (detection ${r.regionDetectionSeconds as number} s + TTL ${r.ttlSeconds as number} s + standby start ${LOCAL_STANDBY_START_ALLOWANCE_SECONDS} s)`,
      passed: (r.outageSeconds as number) <= allowed,
      actual: `${(r.outageSeconds as number).toFixed(2)} s`,
    },
    {
      target: "the alarm started the secondary",
      passed: Boolean(r.secondaryStartedByAlarm),
      actual: r.secondaryStartedByAlarm ? "yes" : "no",
    },
    { target: "DNS failed back", passed: Boolean(r.failedBack), actual: r.failedBack ? "yes" : "no" },
    {
      target: "the secondary back to standby",
      passed: Boolean(r.secondaryBackToStandby),
      actual: r.secondaryBackToStandby ? "yes" : "no",
    },
  ];
};

const formatPhases = (p: RegionOutagePhases | undefined) =>
  !p
    ? "not measured"
    : (
        [
          ["detection", p.detectionSeconds],
          ["alarm", p.alarmSeconds],
          ["standby start", p.standbyStartSeconds],
          ["DNS", p.dnsSeconds],
          ["clients served", p.clientsServedSeconds],
        ] as const
      )
        .map(([name, s]) => `${name} ${s === null ? "never" : `${s.toFixed(1)} s`}`)
        .join(", ");

/**
 * What each region acknowledged, from the counts clients were answered, in answer order:
 * `lostOnFailover` the counts answered by the primary above where the secondary went on from (its
 * lowest answer less one), `lostOnFailback` the same from the secondary to the primary; null when a
 * side answered nothing. `countWentBackBy` the largest step back a client saw (from a count answered before it sent).
 */
export function countAcrossRegions(
  answers: readonly { count: number; address: string }[],
  primaryHost: string,
  secondaryHost: string,
  /** From the traffic's continuity check: the largest step back below a count answered before a request was sent. */
  countWentBackBy: number,
): {
  lostOnFailover: number | null;
  lostOnFailback: number | null;
  countWentBackBy: number;
  byRegion: { phase: string; first: number; last: number; answers: number }[];
} {
  // Consecutive runs of answers from one address: primary, secondary, primary again.
  const phases: { address: string; counts: number[] }[] = [];
  for (const a of answers) {
    const last = phases[phases.length - 1];
    if (last?.address === a.address) last.counts.push(a.count);
    else phases.push({ address: a.address, counts: [a.count] });
  }
  const lost = (from?: number[], to?: number[]) =>
    from?.length && to?.length ? Math.max(0, Math.max(...from) - (Math.min(...to) - 1)) : null;
  // Every answer from the secondary counts (one still in flight may complete after the switch back).
  const firstSecondary = answers.findIndex((a) => a.address === secondaryHost);
  const of = (list: readonly { count: number; address: string }[], host: string) =>
    list.filter((a) => a.address === host).map((a) => a.count);
  const primaryBefore = of(firstSecondary < 0 ? answers : answers.slice(0, firstSecondary), primaryHost);
  const secondaryCounts = of(answers, secondaryHost);
  const primaryAfter = firstSecondary < 0 ? [] : of(answers.slice(firstSecondary), primaryHost);
  return {
    lostOnFailover: lost(primaryBefore, secondaryCounts),
    lostOnFailback: lost(secondaryCounts, primaryAfter),
    countWentBackBy,
    byRegion: phases.map((p) => ({
      phase: p.address === primaryHost ? "primary" : p.address === secondaryHost ? "secondary" : p.address,
      first: p.counts[0] ?? 0,
      last: p.counts[p.counts.length - 1] ?? 0,
      answers: p.counts.length,
    })),
  };
}

function replicaTargets(r: DrillReport): DrillTarget[] {
  const lag = r.replicationLagMs as number | null;
  const allowed = lag === null ? 0 : Math.ceil((r.rate * lag) / 1000);
  const onFailover = r.acknowledgedLostOnFailover as number | null;
  const onFailback = r.acknowledgedLostOnFailback as number | null;
  return [
    counterTarget(r),
    {
      target: "no acknowledged count lost on the planned failback",
      passed: onFailback === 0,
      actual: onFailback === null ? "unknown" : `${onFailback} lost`,
    },
    {
      target: "on failover, no more lost than the replication lag allows",
      passed: onFailover !== null && onFailover <= allowed,
      actual: `${onFailover ?? "unknown"} lost; ${allowed} allowed (${r.rate}/s × ${lag ?? "unknown"} ms)`,
    },
    {
      target: "the primary region caught up before it took writes again",
      passed: Boolean(r.primaryCaughtUpBeforeWrites),
      actual: r.primaryCaughtUpBeforeWrites ? "yes" : "no",
    },
  ];
}

export const regionOutage = defineDrill<{ outageSeconds: number }>({
  name: "region-outage",
  description: "take the primary region down, then bring it back: DNS failover and failback",
  topologies: {
    "load-balanced": true,
    "single-instance": {
      unsupported: "this topology runs one region: no secondary region and no DNS failover",
      instead: "run `stayup drill region-outage --topology load-balanced`",
    },
    ecs: {
      unsupported: "this topology runs one region: no secondary region and no DNS failover",
      instead: "run `stayup drill region-outage --topology load-balanced`",
    },
  },
  options: () => [
    new Option("--outage-seconds <n>", "how long the region stays down once the secondary serves")
      .argParser(Number)
      .default(3),
  ],
  run: ({ client, rate, onProgress, harness, options }) =>
    regionOutageDrill(client, { ...harness, rate, onProgress, outageMs: options.outageSeconds * 1000 }),
  details: (report) => [
    `regions              ${report.primaryRegion} → ${report.secondaryRegion} → ${report.primaryRegion}`,
    `clients saw failures ${(report.outageSeconds as number).toFixed(2)} s (DNS answers: ${(report.resolvedAddresses as string[]).join(" → ")})`,
    `secondary            started by the alarm: ${report.secondaryStartedByAlarm ? "yes" : "NO"}; back to standby (${report.standbyCapacity}): ${report.secondaryBackToStandby ? "yes" : "NO"}`,
    `notifications        ${(report.notifications as string[]).join("; ") || "none"}`,
    `phases (from fault)  ${formatPhases(report.phases as RegionOutagePhases | undefined)}; a region is called down within ${report.regionDetectionSeconds as number} s of failed checks (the first may come at once; longer than the ${report.inRegionBudgetSeconds as number} s a recovery inside it may take)`,
    report.crossRegion === "replica"
      ? `redis across regions replica (lag before the fault ${report.replicationLagMs ?? "unknown"} ms); acknowledged lost ${report.acknowledgedLostOnFailover ?? "unknown"} on failover, ${report.acknowledgedLostOnFailback ?? "unknown"} on failback`
      : `redis across regions none: each region counts from its own copy; the count went back by ${report.countWentBackBy}`,
  ],
  passed: (r) => regionOutageTargets(r).every((t) => t.passed),
});
