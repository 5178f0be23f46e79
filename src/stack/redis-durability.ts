import type { ResolvedStack } from "./schema.ts";

/**
 * Redis durability, derived once from the description and read by both renderers (the local
 * Sentinel group and ElastiCache): with `redis.multiAz`, one node per availability zone (a primary
 * and a replica in each other AZ); a count is acknowledged once one replica holds it (WAIT 1).
 */
export function redisNodeCount(stack: ResolvedStack): number {
  return stack.redis.multiAz ? Math.max(2, stack.regions.primary.availabilityZones.length) : 1;
}

/** Replicas that must hold a count before it is answered (Redis WAIT and min-replicas-to-write). */
export function redisReplicasToAcknowledge(stack: ResolvedStack): number {
  return redisNodeCount(stack) > 1 ? 1 : 0;
}
