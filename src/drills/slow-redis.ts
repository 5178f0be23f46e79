import { Option } from "commander";
import { faultSecondsOption } from "./failing-instance.ts";
import { formatLatency, type LatencyPercentiles, maxFailedShare, redisFaultDrill } from "./gray-fault.ts";
import { defineDrill } from "./module.ts";

export const slowRedis = defineDrill<{ faultSeconds: number; latencyMs?: number; hang: boolean }>({
  name: "slow-redis",
  counterOnly: "the slow Redis path is injected inside the counter's instances, over their control channel",
  description:
    "every instance's path to Redis gets slow (or hangs, --hang); pages slow down or answer 503, nothing is replaced",
  topologies: {
    "load-balanced": true,
    "single-instance": {
      unsupported:
        "the fault is sent to the load-balanced web group's instances; the single instance (with its own Redis) is not one of them, so nothing would slow down",
      instead: "run `stayup drill slow-redis --topology load-balanced`",
    },
    ecs: {
      unsupported:
        "the fault is sent to the web group's instances, and in this topology the tasks are not among them: it would pass having slowed nothing",
      instead: "run `stayup drill slow-redis --topology load-balanced`",
    },
  },
  options: () => [
    faultSecondsOption(),
    new Option("--latency-ms <n>", "latency added to each Redis command").argParser(Number).default(200),
    new Option("--hang", "Redis commands hang until the client's command timeout (2 s)").default(false),
  ],
  run: ({ client, rate, onProgress, harness, options }) =>
    redisFaultDrill(
      "slow-redis",
      client,
      options.hang ? { kind: "hang" } : { kind: "latency", ms: options.latencyMs ?? 200 },
      { ...harness, rate, onProgress, faultMs: options.faultSeconds * 1000 },
    ),
  details: (report) => [
    `fault                ${JSON.stringify(report.fault)}`,
    `latency before       ${formatLatency(report.latencyBeforeFault as LatencyPercentiles)}`,
    `latency during fault ${formatLatency(report.latencyDuringFault as LatencyPercentiles)}`,
    `latency after        ${formatLatency(report.latencyAfterFault as LatencyPercentiles)}`,
    `ejected / replaced   ${(report.ejectedInstances as string[]).length} / ${(report.replacedInstances as string[]).length} (the whole group is slow: nobody is an outlier)`,
  ],
  // Slow is not broken: with added latency nothing may fail, be ejected or be replaced. A hang
  // fails pages with 503 by design (the instance cannot count), so only the group's calm is checked.
  passed: (r) =>
    r.recoverySeconds !== null &&
    ((r.fault as { kind: string }).kind === "hang"
      ? (r.replacedInstances as string[]).length === 0
      : r.failed <= maxFailedShare * r.requests &&
        r.counterContinuous &&
        (r.ejectedInstances as string[]).length === 0 &&
        (r.replacedInstances as string[]).length === 0),
});
