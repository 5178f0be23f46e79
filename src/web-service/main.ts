/**
 * The process every instance runs. Configured through the environment, the way user data or an
 * ECS task definition configures it on AWS.
 *
 *   STAYUP_INSTANCE_ID, STAYUP_AZ, STAYUP_REGION   identity shown on the page
 *   STAYUP_REDIS_URL                                 redis://[:token@]host:port (rediss:// for TLS)
 *   STAYUP_REDIS_SENTINELS, STAYUP_REDIS_MASTER_NAME  host:port,... of Sentinels instead of a URL
 *   STAYUP_REDIS_WAIT_REPLICAS                       answer a count once this many replicas have it
 *   HOST, PORT                                       listen address (PORT=0: any free port)
 *   STAYUP_SHUTDOWN_TIMEOUT_MS                       hard deadline for draining (default 10000)
 *   STAYUP_LOAD_ENDPOINT=1                           serve GET /load?cpuMs=N for load drills (local only)
 *   STAYUP_REDIS_READY_TIMEOUT_MS                    wait for Redis before listening (default 2000)
 */
import { hostname } from "node:os";
import { createWebService } from "./server.ts";

const env = process.env;
const identity = {
  instanceId: env.STAYUP_INSTANCE_ID ?? hostname(),
  availabilityZone: env.STAYUP_AZ ?? "unknown",
  region: env.STAYUP_REGION ?? "unknown",
};
const redisUrl = new URL(env.STAYUP_REDIS_URL ?? "redis://127.0.0.1:6379");
const sentinels = (env.STAYUP_REDIS_SENTINELS ?? "")
  .split(",")
  .filter(Boolean)
  .map((hostPort) => {
    const [host, port] = hostPort.split(":");
    return { host: host ?? "127.0.0.1", port: Number(port) };
  });
const service = createWebService({
  identity,
  redis:
    sentinels.length > 0
      ? // Through Sentinel: the client asks who is primary and follows a failover without a restart.
        { sentinels, name: env.STAYUP_REDIS_MASTER_NAME ?? "stayup", failoverDetector: true }
      : {
          host: redisUrl.hostname,
          port: Number(redisUrl.port || 6379),
          password: redisUrl.password ? decodeURIComponent(redisUrl.password) : undefined,
          username: redisUrl.username ? decodeURIComponent(redisUrl.username) : undefined,
          tls: redisUrl.protocol === "rediss:" ? {} : undefined,
        },
  waitForReplicas: Number(env.STAYUP_REDIS_WAIT_REPLICAS ?? 0),
  logLevel: env.LOG_LEVEL,
  loadEndpoint: env.STAYUP_LOAD_ENDPOINT === "1",
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

// Give the first Redis connection a moment before taking traffic, so a new instance does not answer
// its first requests with 503; if Redis is down, start anyway and answer 503 with the reason.
const redisReadyTimeoutMs = Number(env.STAYUP_REDIS_READY_TIMEOUT_MS ?? 2000);
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
} catch (error) {
  service.app.log.error({ err: error }, "cannot listen");
  process.exit(1);
}
