import { defineStack } from "../../src/stack/index.ts";
import base from "../../stayup.config.ts";

/** bench/region-outage.sh: the repository's description, standby "warm", crossRegion "none". */
export default defineStack({
  ...base,
  regions: {
    ...base.regions,
    secondary: base.regions.secondary && {
      ...base.regions.secondary,
      standby: { ...base.regions.secondary.standby, mode: "warm" },
    },
  },
  environments: {
    ...base.environments,
    dev: {
      ...base.environments.dev,
      redis: { ...base.environments.dev.redis, crossRegion: "none" },
    },
  },
});
