import { REDIS_WRITE_HOLD } from "./region-failover-timing.ts";
import type { ResolvedStack } from "./schema.ts";

/**
 * Redis durability, derived once from the description and read by both renderers (the local
 * Sentinel group and ElastiCache): with `redis.multiAz`, one node per availability zone (a primary
 * and a replica in each other AZ); a count is acknowledged once the replicas below hold it.
 */
export function redisNodeCount(stack: ResolvedStack): number {
  return stack.redis.multiAz ? Math.max(2, stack.regions.primary.availabilityZones.length) : 1;
}

/**
 * Replicas that must hold a count before it is answered (Redis WAIT and min-replicas-to-write).
 *
 * Locally, every replica of the group. Sentinel picks the replica to promote from replication
 * offsets sampled up to a second earlier, and a starved Sentinel can fail over a live primary,
 * which keeps taking writes through its other replica after the promoted one left it. A count one
 * replica held (WAIT 1 of two) was lost that way on a loaded machine: a second failover promoted
 * the other replica. Only a count every node holds survives any node being promoted. Not "the
 * replicas connected now": the replica being promoted disconnects first, which would lower the
 * count exactly when it matters. The price: while a replica is down or resyncing (a few seconds
 * locally), counts are held, then answered 503, never lost.
 *
 * On AWS, one. ElastiCache promotes the replica with the least replication lag, which holds every
 * count one replica acknowledged; while it replaces a failed node (minutes) the one replica left is
 * every replica. Every replica there would answer 503 for those minutes after each failover.
 * The difference is in docs/acknowledged-writes.md.
 */
export function redisReplicasToAcknowledge(stack: ResolvedStack, where: "local" | "aws"): number {
  const replicas = redisNodeCount(stack) - 1;
  return where === "local" ? replicas : Math.min(1, replicas);
}

/**
 * How long an instance holds a count through a Redis failover before answering 503
 * (STAYUP_REDIS_WRITE_HOLD_MS), locally or on AWS: the failover's budget (REDIS_WRITE_HOLD), or 0
 * without a replica, where there is no failover to wait for.
 */
export function redisWriteHoldMs(stack: ResolvedStack, where: "local" | "aws"): number {
  if (redisReplicasToAcknowledge(stack, where) === 0) return 0;
  return where === "aws" ? REDIS_WRITE_HOLD.awsMs : REDIS_WRITE_HOLD.localMs;
}
