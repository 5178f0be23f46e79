import { Option } from "commander";
import { faultSecondsOption, grayInstanceTopologies, instanceFaultDetails } from "./failing-instance.ts";
import { instanceOption, victimOf } from "./victim.ts";
import { instanceFaultDrill, instanceFaultVerdict } from "./gray-fault.ts";
import { defineDrill } from "./module.ts";

export const slowInstance = defineDrill<{
  faultSeconds: number;
  latencyMs?: number;
  stall: boolean;
  instance?: string;
}>({
  name: "slow-instance",
  counterOnly: "the latency is injected by the counter, over its control channel",
  description:
    "one instance answers GET / late (or never, --stall) while its /health passes; requests go elsewhere and it is ejected",
  topologies: grayInstanceTopologies("slow-instance"),
  options: () => [
    faultSecondsOption(),
    new Option("--latency-ms <n>", "latency added to each GET / on the instance")
      .argParser(Number)
      .default(2000),
    new Option("--stall", "accept GET / and never answer, instead of answering late").default(false),
    instanceOption(),
  ],
  run: ({ client, rate, onProgress, harness, options }) =>
    instanceFaultDrill(
      "slow-instance",
      client,
      options.stall ? { kind: "stall" } : { kind: "latency", ms: options.latencyMs ?? 2000 },
      { ...harness, rate, onProgress, faultMs: options.faultSeconds * 1000, ...victimOf(options) },
    ),
  details: instanceFaultDetails,
  passed: instanceFaultVerdict,
});
