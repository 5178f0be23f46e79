import { defineStack } from "../../src/stack/index.ts";
import base from "../../stayup.config.ts";

/** bench/region-outage.sh: the repository's description, standby "active", crossRegion "replica". */
export default defineStack({
  ...base,
  regions: {
    ...base.regions,
    secondary: base.regions.secondary && {
      ...base.regions.secondary,
      standby: { ...base.regions.secondary.standby, mode: "active" },
    },
  },
  environments: {
    ...base.environments,
    dev: {
      ...base.environments.dev,
      redis: { nodeType: "cache.r7g.large", multiAz: true, crossRegion: "replica" },
    },
  },
});
