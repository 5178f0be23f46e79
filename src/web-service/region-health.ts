import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import { REGION_HEALTH_CHECK_PATH } from "../stack/derived.ts";

export interface RegionHealthOptions {
  redis: Redis;
  instanceId: string;
  /** Each Redis round trip's bound: past it the answer is 503, not a hung check. */
  timeoutMs?: number;
}

/** What the region health check judges of this instance's Redis (pure: tested on its own). */
export type RegionRedisVerdict =
  | { serves: true; redis: "writable" }
  | { serves: true; redis: "following"; reason: string }
  | { serves: false; reason: string };

/**
 * Can this region serve? Its Redis must answer; it must take writes when it is the writer (role
 * master: a primary refusing writes, out of memory or short of replicas, cannot serve a count); a
 * read-only copy following another region's (role replica, link up) can serve once promoted, which
 * is what the failback does once DNS answers this region again (docs/region-failover.md). A copy
 * whose link is down has not caught up: not serving. Managed Redis may hide the link's state; then
 * the READONLY answer alone says it is a reachable copy.
 */
export function regionRedisVerdict(observed: {
  /** `INFO replication`, or undefined when it could not be read. */
  replicationInfo?: string;
  /** The bounded write's error, or undefined when it succeeded; not tried on a replica. */
  writeError?: string;
}): RegionRedisVerdict {
  const info = observed.replicationInfo ?? "";
  const role = /^role:(\w+)/m.exec(info)?.[1];
  const link = /^master_link_status:(\w+)/m.exec(info)?.[1];
  const readOnly = observed.writeError?.startsWith("READONLY") ?? false;
  if (role === "slave" || role === "replica" || readOnly) {
    if (link !== undefined && link !== "up") {
      return { serves: false, reason: `redis: a copy whose link to its writer is ${link}: not caught up` };
    }
    return {
      serves: true,
      redis: "following",
      reason: "redis: a read-only copy following its writer; this region takes writes once promoted",
    };
  }
  if (observed.writeError !== undefined) return { serves: false, reason: `redis: ${observed.writeError}` };
  return { serves: true, redis: "writable" };
}

/**
 * The region health check's endpoint (Route 53 on AWS, the failover probe locally): 200 if this
 * instance's region can serve (regionRedisVerdict), 503 with the reason otherwise. A write proves a
 * writer (a PING does not: a primary refusing writes answers it too); a replica is not written to.
 */
export async function regionHealth(app: FastifyInstance, options: RegionHealthOptions): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 1000;
  const key = `stayup:health:${options.instanceId}`;
  const bounded = async <T>(work: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
  app.get(REGION_HEALTH_CHECK_PATH, async (_request, reply) => {
    const started = performance.now();
    let verdict: RegionRedisVerdict;
    try {
      // Read the role first: a write refused as READONLY makes the client reconnect.
      const replicationInfo = await bounded(options.redis.info("replication")).catch(() => undefined);
      let writeError: string | undefined;
      if (!/^role:(slave|replica)/m.test(replicationInfo ?? "")) {
        writeError = await bounded(options.redis.set(key, String(Date.now()), "PX", 60_000)).then(
          () => undefined,
          (error: Error) => error.message,
        );
      }
      verdict = regionRedisVerdict({ replicationInfo, writeError });
    } catch (error) {
      verdict = { serves: false, reason: `redis: ${(error as Error).message}` };
    }
    if (!verdict.serves) {
      reply.code(503).header("retry-after", "1");
      return { status: "unavailable", reason: verdict.reason, instanceId: options.instanceId };
    }
    return {
      status: "ok",
      redis: verdict.redis,
      ...(verdict.redis === "following" ? { reason: verdict.reason } : {}),
      redisRoundTripMs: Math.round(performance.now() - started),
      instanceId: options.instanceId,
    };
  });
}
