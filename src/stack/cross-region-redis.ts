import type { ResolvedStack } from "./schema.ts";

export { globalDatastoreNodeTypeProblem } from "./global-datastore.ts";

/**
 * What of Redis crosses regions, derived once for both renderers (the local runtime's two Redis
 * groups, and ElastiCache with or without a Global Datastore on AWS).
 */
export type CrossRegionRedis = "none" | "replica";

/** The description's cross-region choice; `none` without a secondary region (nothing to cross to). */
export function crossRegionRedis(stack: ResolvedStack): CrossRegionRedis {
  return stack.regions.secondary ? stack.redis.crossRegion : "none";
}

/** The Global Datastore's suffix (AWS prefixes it per region) and the two regions' group ids. */
export function globalDatastoreNames(stack: ResolvedStack): { suffix: string } {
  return { suffix: `${stack.name}-${stack.environment}-redis` };
}
