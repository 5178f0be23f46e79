/**
 * The process every instance runs. Configured through the environment, the way user data or an
 * ECS task definition configures it on AWS.
 *
 *   STAYUP_INSTANCE_ID, STAYUP_AZ, STAYUP_REGION   identity shown on the page (without STAYUP_AZ,
 *                                                    an ECS task asks its metadata endpoint v4)
 *   STAYUP_VERSION                                   the version serving (bundle + settings hash)
 *   STAYUP_REDIS_URL                                 redis://[:token@]host:port (rediss:// for TLS)
 *   STAYUP_REDIS_AUTH_TOKEN                          the AUTH token, when it is not in the URL (ECS secrets)
 *   STAYUP_REDIS_SENTINELS, STAYUP_REDIS_MASTER_NAME  host:port,... of Sentinels instead of a URL
 *   STAYUP_REDIS_PASSWORD                            Redis (and Sentinel) password, if not in the URL
 *   STAYUP_REDIS_WAIT_REPLICAS                       answer a count once this many replicas have it
 *   STAYUP_REDIS_WRITE_HOLD_MS                       hold and retry a count this long during a failover
 *                                                    (default 6000, the local Sentinel budget, with
 *                                                    replicas, else 0; see REDIS_WRITE_HOLD)
 *   HOST, PORT                                       listen address (PORT=0: any free port)
 *   STAYUP_SHUTDOWN_TIMEOUT_MS                       hard deadline for draining (default 10000)
 *   STAYUP_LOAD_SECRET                               serve GET /load?cpuMs=N to requests carrying it in
 *                                                    x-stayup-load-secret (load drills; local only)
 *   STAYUP_REDIS_READY_TIMEOUT_MS                    wait for Redis before listening (default 2000)
 *   STAYUP_BROKEN=crash|unhealthy                    a broken version on purpose (rollback drills):
 *                                                    exits at start, or never passes /health
 */
import { performance } from "node:perf_hooks";
import { hostname } from "node:os";
import { REDIS_WRITE_HOLD } from "../stack/region-failover-timing.ts";
import { serviceListening } from "./code-cache.ts";
import { isFaultCommand } from "./faults.ts";
import { createWebService } from "./server.ts";
import { taskAvailabilityZone } from "./task-metadata.ts";

const env = process.env;
if (env.STAYUP_BROKEN === "crash") {
  console.error("STAYUP_BROKEN=crash: this version exits at start, on purpose");
  process.exit(1);
}
const identity = {
  instanceId: env.STAYUP_INSTANCE_ID ?? hostname(),
  availabilityZone: env.STAYUP_AZ ?? "unknown",
  region: env.STAYUP_REGION ?? "unknown",
  version: env.STAYUP_VERSION ?? "unknown",
};
const redisUrl = new URL(env.STAYUP_REDIS_URL ?? "redis://127.0.0.1:6379");
const redisPassword =
  env.STAYUP_REDIS_PASSWORD || (redisUrl.password ? decodeURIComponent(redisUrl.password) : undefined);
const sentinels = (env.STAYUP_REDIS_SENTINELS ?? "")
  .split(",")
  .filter(Boolean)
  .map((hostPort) => {
    const [host, port] = hostPort.split(":");
    return { host: host ?? "127.0.0.1", port: Number(port) };
  });
const waitForReplicas = Number(env.STAYUP_REDIS_WAIT_REPLICAS ?? 0);
// Both renderers set STAYUP_REDIS_WRITE_HOLD_MS (redisWriteHoldMs); without it, the local budget.
const defaultWriteHoldMs = REDIS_WRITE_HOLD.localMs;
const service = createWebService({
  identity,
  redis:
    sentinels.length > 0
      ? // Through Sentinel: the client asks who is primary and follows a failover without a restart.
        {
          sentinels,
          name: env.STAYUP_REDIS_MASTER_NAME ?? "stayup",
          failoverDetector: true,
          password: redisPassword,
          sentinelPassword: redisPassword,
        }
      : {
          host: redisUrl.hostname,
          port: Number(redisUrl.port || 6379),
          password: env.STAYUP_REDIS_AUTH_TOKEN ?? redisPassword,
          username: redisUrl.username ? decodeURIComponent(redisUrl.username) : undefined,
          tls: redisUrl.protocol === "rediss:" ? {} : undefined,
        },
  waitForReplicas,
  writeHoldMs: Number(env.STAYUP_REDIS_WRITE_HOLD_MS ?? (waitForReplicas > 0 ? defaultWriteHoldMs : 0)),
  logLevel: env.LOG_LEVEL,
  loadSecret: env.STAYUP_LOAD_SECRET || undefined,
  neverHealthy: env.STAYUP_BROKEN === "unhealthy",
});

const shutdownTimeoutMs = Number(env.STAYUP_SHUTDOWN_TIMEOUT_MS ?? 10_000);
let stopping = false;
async function stop(reason: string) {
  if (stopping) return;
  stopping = true;
  service.app.log.info({ reason }, "draining: no new connections, finishing in-flight requests");
  // A request stuck past the deadline must not keep a terminated instance alive forever.
  setTimeout(() => {
    service.app.log.error("drain deadline passed; exiting with requests still open");
    process.exit(1);
  }, shutdownTimeoutMs).unref();
  await service.shutdown();
  service.app.log.info("drained; exiting");
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
// Started by the local runtime: if the runtime goes away, so do we (no orphans).
process.on("disconnect", () => void stop("parent runtime exited"));
// Faults come only over the IPC channel of the runtime that forked us: no port can set them.
process.on("message", (message) => {
  if (isFaultCommand(message)) service.app.faults?.apply(message);
});

/**
 * Waits for Redis (a moment), then listens. A function, not top-level await: the same code is also
 * bundled as CommonJS, which a local instance compiles from a V8 code cache (code-cache.ts).
 */
async function listen(): Promise<void> {
  // Give the first Redis connection a moment before taking traffic, so a new instance does not answer
  // its first requests with 503; if Redis is down, start anyway and answer 503 with the reason.
  const redisReadyTimeoutMs = Number(env.STAYUP_REDIS_READY_TIMEOUT_MS ?? 2000);
  // An ECS task's AZ is not in its task definition: its metadata endpoint knows it.
  if (!env.STAYUP_AZ) {
    const zone = await taskAvailabilityZone(env);
    if (zone) service.setAvailabilityZone(zone);
  }
  if (service.redis.status !== "ready") {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, redisReadyTimeoutMs);
      service.redis.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  try {
    const address = await service.app.listen({ host: env.HOST ?? "0.0.0.0", port: Number(env.PORT ?? 8000) });
    const port = service.app.server.address();
    process.send?.({
      type: "listening",
      port: typeof port === "object" && port ? port.port : undefined,
      address,
    });
    // Started through a code cache that is to be written: what compiled so far goes into it.
    (globalThis as Record<symbol, (() => void) | undefined>)[serviceListening]?.();
    // How busy the event loop was over the last second (0..1), for the runtime's scaling: unlike
    // CPU time it includes the time spent waiting for a CPU on a busy host (see scaling/controller.ts).
    if (process.send) {
      let last = performance.eventLoopUtilization();
      setInterval(() => {
        const now = performance.eventLoopUtilization();
        const { utilization } = performance.eventLoopUtilization(now, last);
        last = now;
        if (process.connected) process.send?.({ type: "utilization", eventLoop: utilization });
      }, 1000).unref();
    }
  } catch (error) {
    service.app.log.error({ err: error }, "cannot listen");
    process.exit(1);
  }
}
void listen();
