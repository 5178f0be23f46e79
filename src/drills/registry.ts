import { azOutage } from "./az-outage.ts";
import { cpuSpike } from "./cpu-spike.ts";
import { failingInstance } from "./failing-instance.ts";
import { killInstance } from "./kill-instance.ts";
import { loseContainerInstance } from "./lose-container-instance.ts";
import { topologies } from "../stack/names.ts";
import { type DrillModule, supportedTopologies } from "./module.ts";
import { redisFailover } from "./redis-failover.ts";
import { regionOutage } from "./region-outage.ts";
import { slowInstance } from "./slow-instance.ts";
import { slowRedis } from "./slow-redis.ts";
import { rollingDeploy } from "./rolling-deploy.ts";

/** Every drill `stayup drill` offers, in help order: a new drill is its module and one line here. */
export const drills: readonly DrillModule[] = [
  killInstance,
  azOutage,
  cpuSpike,
  redisFailover,
  regionOutage,
  failingInstance,
  slowInstance,
  slowRedis,
  rollingDeploy,
  loseContainerInstance,
];

/** Every drill with each topology it runs on, as `<drill> <topology>` lines (the nightly drills workflow reads them). */
export function drillTopologyPairs(list: readonly DrillModule[] = drills): string[] {
  return list.flatMap((d) => supportedTopologies(d).map((t) => `${d.name} ${t}`));
}

export function findDrill(name: string): DrillModule | undefined {
  return drills.find((d) => d.name === name);
}

/**
 * The drills × topologies table of docs/drills.md, from the drills' declarations (`npm run docs`
 * writes it there; test/drill-topologies.test.ts checks the copy against it).
 */
export function drillTopologyTable(list: readonly DrillModule[] = drills): string {
  const rows = [
    ["drill", ...topologies.map((t) => `\`${t}\``)],
    ["---", ...topologies.map(() => "---")],
    ...list.map((d) => [
      `\`${d.name}\``,
      ...topologies.map((t) => (d.topologies[t] === true ? "yes" : "no")),
    ]),
  ];
  return rows.map((r) => `| ${r.join(" | ")} |`).join("\n");
}
