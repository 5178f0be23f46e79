import { azOutage } from "./az-outage.ts";
import { cpuSpike } from "./cpu-spike.ts";
import { failingInstance } from "./failing-instance.ts";
import { killInstance } from "./kill-instance.ts";
import { loseContainerInstance } from "./lose-container-instance.ts";
import type { DrillModule } from "./module.ts";
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

export function findDrill(name: string): DrillModule | undefined {
  return drills.find((d) => d.name === name);
}
