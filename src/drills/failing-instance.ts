import { Option } from "commander";
import {
  formatLatency,
  instanceFaultDrill,
  instanceFaultVerdict,
  type LatencyPercentiles,
} from "./gray-fault.ts";
import { defineDrill, type DrillTopologies } from "./module.ts";
import { instanceOption, victimOf } from "./victim.ts";
import type { DrillReport } from "./report.ts";

/** Lines shared by the instance gray-fault drills. */
export function instanceFaultDetails(report: DrillReport): string[] {
  const victim = report.victim as { id: string; az: string };
  const s = (v: unknown) => (typeof v === "number" ? `${v.toFixed(2)} s` : "never");
  return [
    `faulted              ${victim.id} in ${victim.az} (/health kept passing)`,
    `out of rotation      ${s(report.ejectedAfterSeconds)} after the fault (target ≤ 1 s)`,
    `back in rotation     ${s(report.returnedAfterSeconds)} after the fault was cleared`,
    `failed share         ${((100 * report.failed) / Math.max(1, report.requests)).toFixed(2)} % (target ≤ 1 %)`,
    `latency before       ${formatLatency(report.latencyBeforeFault as LatencyPercentiles)}`,
    `latency during fault ${formatLatency(report.latencyDuringFault as LatencyPercentiles)}`,
    `replaced instances   ${(report.replacedInstances as string[]).length}`,
  ];
}

/** Where the instance gray-fault drills run: they need a load balancer and a peer to eject to. */
export const grayInstanceTopologies = (drill: string): DrillTopologies => ({
  "load-balanced": true,
  "single-instance": {
    unsupported:
      "no load balancer: the stable address points at the one instance, so there is no peer to send requests to and nothing ejects it",
    instead: `run \`stayup drill ${drill} --topology load-balanced\``,
  },
  ecs: {
    unsupported:
      "the fault is sent to the web group's instances, and in this topology the tasks are not among them: the drill cannot reach a task",
    instead: `run \`stayup drill ${drill} --topology load-balanced\``,
  },
});

export const faultSecondsOption = () =>
  new Option("--fault-seconds <n>", "how long the fault lasts").argParser(Number).default(5);

export const failingInstance = defineDrill<{ faultSeconds: number; status: string; instance?: string }>({
  name: "failing-instance",
  counterOnly: "the failing answers are injected by the counter, over its control channel",
  description: "one instance answers 5xx on GET / while its /health passes; the balancer ejects it",
  topologies: grayInstanceTopologies("failing-instance"),
  options: () => [
    faultSecondsOption(),
    new Option("--status <code>", "the 5xx code the instance answers")
      .choices(["500", "502", "503", "504"])
      .default("500"),
    instanceOption(),
  ],
  run: ({ client, rate, onProgress, harness, options }) =>
    instanceFaultDrill(
      "failing-instance",
      client,
      { kind: "errors", status: Number(options.status) },
      { ...harness, rate, onProgress, faultMs: options.faultSeconds * 1000, ...victimOf(options) },
    ),
  details: instanceFaultDetails,
  passed: instanceFaultVerdict,
});
