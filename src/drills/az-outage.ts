import { Option } from "commander";
import type { StackClient } from "../local/control-plane/client.ts";
import { StayupError } from "../shared/errors.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import { basicTargets, type DrillReport, type DrillTarget } from "./report.ts";
import { defineDrill } from "./module.ts";

/**
 * Takes a whole availability zone down at once (every instance in it dies, nothing launches there,
 * its Redis node is out of reach) under steady traffic; the group must rebalance into the other
 * zones, and Redis fail over when its primary was there, with no failed request.
 */
export async function azOutageDrill(
  client: StackClient,
  opts: Partial<DrillOptions & { az: string }> = {},
): Promise<DrillReport> {
  const o = { ...drillDefaults, ...opts };
  const run = await DrillRun.start(client, o);
  const healthy = run.before.instances.filter((i) => i.healthy);
  const byAz = new Map<string, number>();
  for (const i of healthy) byAz.set(i.az, (byAz.get(i.az) ?? 0) + 1);
  const az = o.az ?? [...byAz.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  if (!az) {
    await run.finish();
    throw new StayupError("no healthy instance, so no zone to take down");
  }
  const faultAt = Date.now();
  const fault = await client.fault("az-outage", { az });
  const lost = fault.terminated as string[];
  // The zone's Redis node goes with it; a primary there is failed over by Sentinel meanwhile.
  const redisLost = (fault.redisNodesStopped ?? []) as { name: string; role: string }[];
  const redisText = redisLost.map((n) => `Redis ${n.role} ${n.name}`).join(", ");
  run.mark(
    "fault",
    `${az} down (${lost.length} instance(s)${redisText ? `, ${redisText}` : ""} lost)`,
    faultAt,
  );
  run.progress(
    `${az} is down: ${lost.length} instance(s) lost (${lost.join(", ")})${redisText ? `, and ${redisText} out of reach` : ""}`,
  );
  try {
    const restoredAt = await run.waitFor(
      run.capacityRestored(faultAt, run.before.group.desired),
      o.recoveryTimeoutMs,
    );
    const recoverySeconds = restoredAt === undefined ? null : (restoredAt - faultAt) / 1000;
    if (restoredAt !== undefined)
      run.mark("recovery", `capacity back to ${run.before.group.desired} in the other zones`, restoredAt);
    run.progress(
      recoverySeconds === null
        ? `capacity not back within ${o.recoveryTimeoutMs / 1000} s`
        : `capacity back to ${run.before.group.desired} after ${recoverySeconds.toFixed(2)} s`,
    );
    const result = await run.finish();
    const after = await client.status();
    return run.report(
      "az-outage",
      result,
      recoverySeconds,
      {
        az,
        instancesLost: lost.length,
        redisNodesLost: redisLost.map((n) => `${n.name} (${n.role})`),
        launchedInImpairedAz: after.instances.filter((i) => i.az === az).length,
        zonesAfter: [...new Set(after.instances.map((i) => i.az))].sort(),
      },
      azOutageTargets,
    );
  } finally {
    await client.fault("az-restore", { az });
  }
}

/** This drill's targets, checked against a run's report. */
export const azOutageTargets = (r: DrillReport): DrillTarget[] => [
  ...basicTargets(r),
  {
    target: "nothing launched in the impaired zone",
    passed: r.launchedInImpairedAz === 0,
    actual: `${r.launchedInImpairedAz as number} launched there`,
  },
];

export const azOutage = defineDrill<{ az?: string }>({
  name: "az-outage",
  description:
    "take one availability zone down at once (its instances and its Redis node); the group rebalances, Redis fails over",
  topologies: {
    "load-balanced": true,
    "single-instance": {
      unsupported:
        "the one instance and its data volume are pinned to one zone, so there is no other zone to rebalance into, and the fault reaches only the load-balanced web group (nothing would break)",
      instead:
        "run `stayup drill kill-instance --topology single-instance` (the instance lost, as with its zone)",
    },
    ecs: {
      unsupported:
        "the fault takes down the region's web group, which runs no process in this topology (the tasks run on container instances): nothing would break",
      instead:
        "run `stayup drill lose-container-instance --topology ecs` (a container instance and its tasks lost)",
    },
  },
  options: () => [
    new Option("--az <az>", "the zone to take down (default: the one with the most healthy instances)"),
  ],
  run: ({ client, rate, onProgress, harness, options }) =>
    azOutageDrill(client, { ...harness, az: options.az, rate, onProgress }),
  details: (report) => [
    `zone down            ${report.az} (${report.instancesLost} instance(s) lost)`,
    `zones after          ${(report.zonesAfter as string[]).join(", ")}`,
  ],
  passed: (r) => azOutageTargets(r).every((t) => t.passed),
});
