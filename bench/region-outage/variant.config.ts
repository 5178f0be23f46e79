import { defineStack } from "../../src/stack/index.ts";
import base from "../../stayup.config.ts";

/**
 * bench/region-outage/run.sh: the repository's description with the secondary's standby mode
 * (STAYUP_BENCH_STANDBY) and what crosses regions (STAYUP_BENCH_CROSS_REGION: none or replica,
 * which needs an R node type for a Global Datastore).
 */
const mode = (process.env.STAYUP_BENCH_STANDBY ?? "pilot-light") as "pilot-light" | "warm" | "active";
const replica = process.env.STAYUP_BENCH_CROSS_REGION === "replica";

export default defineStack({
  ...base,
  regions: {
    ...base.regions,
    secondary: base.regions.secondary && {
      ...base.regions.secondary,
      standby: { ...base.regions.secondary.standby, mode },
    },
  },
  environments: {
    ...base.environments,
    dev: {
      ...base.environments.dev,
      redis: replica
        ? { nodeType: "cache.r7g.large", multiAz: true, crossRegion: "replica" }
        : { ...base.environments.dev.redis, crossRegion: "none" },
    },
  },
});
