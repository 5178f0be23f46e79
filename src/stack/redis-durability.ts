import { REDIS_WRITE_HOLD } from "./region-failover-timing.ts";
import type { ResolvedStack } from "./schema.ts";

/**
 * Redis durability, derived once from the description and read by both renderers (the local
 * Sentinel group and ElastiCache): with `redis.multiAz`, one node per availability zone (a primary
 * and a replica in each other AZ); a count is acknowledged once every replica holds it.
 */
export function redisNodeCount(stack: ResolvedStack): number {
  return stack.redis.multiAz ? Math.max(2, stack.regions.primary.availabilityZones.length) : 1;
}

/**
 * Replicas that must hold a count before it is answered (Redis WAIT and min-replicas-to-write):
 * every replica of the group. Only then does any node a failover may promote hold every answered
 * count, whichever replica it picks and however many failovers follow (Sentinel and ElastiCache
 * pick from replication offsets sampled up to a second earlier, and a live primary failed over by
 * mistake keeps taking writes after the promoted replica left it). A count one replica holds (WAIT 1
 * of two) was lost that way on a loaded machine: a second failover promoted the other replica. The
 * price: while a replica is down or resyncing, counts are held, then answered 503, never lost.
 * Not "the replicas connected now": the replica being promoted disconnects first, which would
 * lower the count exactly when it matters.
 */
export function redisReplicasToAcknowledge(stack: ResolvedStack): number {
  return redisNodeCount(stack) - 1;
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
