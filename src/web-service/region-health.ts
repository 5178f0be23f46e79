import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import { REGION_HEALTH_CHECK_PATH } from "../stack/derived.ts";

export interface RegionHealthOptions {
  redis: Redis;
  instanceId: string;
  /** The Redis round trip's bound: past it the answer is 503, not a hung check. */
  timeoutMs?: number;
}

/**
 * The region health check's endpoint (Route 53 on AWS, the failover probe locally): 200 only if this
 * instance can serve a count right now, proven by a bounded write to Redis (a write, not a PING: a
 * replica or a primary refusing writes answers PING too). 503 with the reason otherwise.
 */
export async function regionHealth(app: FastifyInstance, options: RegionHealthOptions): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 1000;
  const key = `stayup:health:${options.instanceId}`;
  app.get(REGION_HEALTH_CHECK_PATH, async (_request, reply) => {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        options.redis.set(key, String(Date.now()), "PX", 60_000),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      reply.code(503).header("retry-after", "1");
      return {
        status: "unavailable",
        reason: `redis: ${(error as Error).message}`,
        instanceId: options.instanceId,
      };
    } finally {
      clearTimeout(timer);
    }
    return {
      status: "ok",
      redisRoundTripMs: Math.round(performance.now() - started),
      instanceId: options.instanceId,
    };
  });
}
