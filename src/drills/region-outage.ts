import type { StackClient } from "../local/control-plane/client.ts";
import { StayupError } from "../shared/errors.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
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
  const servedAt = failover
    ? await run.waitFor(run.capacityRestored(faultAt, desired, secondary.name), o.recoveryTimeoutMs)
    : undefined;
  // capacityRestored needs a drop first; from pilot light the secondary starts empty.
  const inRotationAt =
    servedAt ??
    (await run.waitFor((events) => {
      let healthy = 0;
      for (const e of events) {
        if (e.region !== secondary.name || Date.parse(e.time) < faultAt) continue;
        if (e.type === "target.healthy") healthy++;
        if (healthy >= desired && desired > 0) return Date.parse(e.time);
      }
      return undefined;
    }, o.recoveryTimeoutMs));
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
  const windows = DrillRun.failureWindows(result, faultAt);
  const outageSeconds = windows.length
    ? (windows[windows.length - 1]?.toSeconds ?? 0) - (windows[0]?.fromSeconds ?? 0)
    : 0;
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
      primaryRegion: status.region,
      secondaryRegion: secondary.name,
      secondaryStartedByAlarm: Boolean(failover),
      failedBack: Boolean(failback),
      secondaryBackToStandby: standbyAt !== undefined,
      standbyCapacity: standby,
      notifications,
      resolvedAddresses: run.traffic.resolvedAddresses,
    },
    regionOutageTargets,
  );
}

/** This drill's targets, checked against a run's report. */
export const regionOutageTargets = (r: DrillReport): DrillTarget[] => [
  recoveredTarget(r),
  counterTarget(r),
  {
    target: "clients see failures for 5 s at most",
    passed: (r.outageSeconds as number) <= 5,
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
  ],
  passed: (r) => regionOutageTargets(r).every((t) => t.passed),
});
