import { REDIS_WRITE_HOLD } from "./region-failover-timing.ts";
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

/**
 * How long an instance holds a count through a Redis failover before answering 503
 * (STAYUP_REDIS_WRITE_HOLD_MS), locally or on AWS: the failover's budget (REDIS_WRITE_HOLD), or 0
 * without a replica, where there is no failover to wait for.
 */
export function redisWriteHoldMs(stack: ResolvedStack, where: "local" | "aws"): number {
  if (redisReplicasToAcknowledge(stack) === 0) return 0;
  return where === "aws" ? REDIS_WRITE_HOLD.awsMs : REDIS_WRITE_HOLD.localMs;
}
