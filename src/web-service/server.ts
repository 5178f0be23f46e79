import Fastify, { type FastifyInstance, LogController } from "fastify";
import { Redis, type RedisOptions } from "ioredis";
import client from "prom-client";

/** Who is serving: shown on every page so a user can watch the load balancer spread requests. */
export interface InstanceIdentity {
  instanceId: string;
  availabilityZone: string;
  region: string;
}

export interface WebServiceOptions {
  identity: InstanceIdentity;
  redis: RedisOptions;
  /**
   * Answer a count only after this many replicas acknowledged it (Redis WAIT), so a failover to a
   * replica never loses a count a client has seen. 0: no waiting (a single node).
   */
  waitForReplicas?: number;
  /** Serve GET /load?cpuMs=N (burns N ms of CPU): for load drills only, never on AWS. */
  loadEndpoint?: boolean;
  /** Redis key of the page counter (the seed's script incremented the wrong key; we use one). */
  counterKey?: string;
  logLevel?: string;
}

export interface WebService {
  app: FastifyInstance;
  redis: Redis;
  /** Stops accepting, lets in-flight requests finish, closes Redis. */
  shutdown(): Promise<void>;
}

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

export function createWebService(options: WebServiceOptions): WebService {
  const { identity } = options;
  const counterKey = options.counterKey ?? "count";
  const registry = new client.Registry();
  registry.setDefaultLabels({
    instance_id: identity.instanceId,
    availability_zone: identity.availabilityZone,
  });
  client.collectDefaultMetrics({ register: registry });
  const requests = new client.Counter({
    name: "stayup_http_requests_total",
    help: "HTTP requests by route and status code",
    labelNames: ["route", "status"] as const,
    registers: [registry],
  });
  const redisErrors = new client.Counter({
    name: "stayup_redis_errors_total",
    help: "Counter requests that failed because Redis was unavailable",
    registers: [registry],
  });
  const redisUp = new client.Gauge({
    name: "stayup_redis_connected",
    help: "1 while the Redis connection is ready",
    registers: [registry],
  });

  const app = Fastify({
    logger: { level: options.logLevel ?? "info", base: { instanceId: identity.instanceId } },
    // Per-request logs would dominate the cost of a request this small; metrics count them instead.
    logController: new LogController({ disableRequestLogging: true }),
    // On close, idle keep-alive sockets are closed at once; busy ones finish their request first.
    forceCloseConnections: "idle",
    return503OnClosing: true,
  });

  const redis = new Redis({
    // Fail fast while disconnected, so the page answers 503 at once instead of queueing.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 2000,
    // Reconnect forever, quickly: Redis coming back must heal every instance without a restart.
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
    lazyConnect: false,
    ...options.redis,
  });
  let lastRedisError = "not connected yet";
  redis.on("ready", () => {
    redisUp.set(1);
    app.log.info("redis ready");
  });
  redis.on("error", (err: Error) => {
    lastRedisError = err.message;
  });
  redis.on("close", () => {
    redisUp.set(0);
  });

  app.addHook("onResponse", async (request, reply) => {
    requests.inc({ route: request.routeOptions.url ?? "unmatched", status: String(reply.statusCode) });
  });

  // The load balancer's health check: cheap, never touches Redis, so a Redis outage does not
  // take every instance out of rotation at once.
  app.get("/health", async () => ({ status: "ok", instanceId: identity.instanceId }));

  if (options.loadEndpoint) {
    // A request that costs a known amount of CPU, so a drill can create real CPU load.
    app.get<{ Querystring: { cpuMs?: string } }>("/load", async (request) => {
      const cpuMs = Math.min(Math.max(Number(request.query.cpuMs ?? 10) || 0, 0), 200);
      const until = process.hrtime.bigint() + BigInt(Math.round(cpuMs * 1e6));
      let spins = 0;
      while (process.hrtime.bigint() < until) spins++;
      return { cpuMs, spins, instanceId: identity.instanceId };
    });
  }

  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", registry.contentType);
    return registry.metrics();
  });

  let replicaWaitPausedUntil = 0;
  app.get("/", async (request, reply) => {
    let count: number;
    try {
      count = await redis.incr(counterKey);
      if (options.waitForReplicas && Date.now() >= replicaWaitPausedUntil) {
        // WAIT blocks this connection: keep it short, and when the replica does not acknowledge
        // (down, or resyncing and so not promotable) stop waiting for a second instead of
        // serializing every request behind the timeout. An error (the primary went away
        // mid-request) answers 503, since the outcome is unknown.
        const acknowledged = await redis.wait(options.waitForReplicas, 100);
        if (acknowledged < options.waitForReplicas) replicaWaitPausedUntil = Date.now() + 1000;
      }
    } catch (error) {
      redisErrors.inc();
      const reason = `redis unavailable: ${redis.status === "ready" ? (error as Error).message : lastRedisError}`;
      reply.code(503).header("retry-after", "1");
      return { error: "service unavailable", reason, ...identity };
    }
    const body = { count, ...identity };
    if ((request.headers.accept ?? "").includes("text/html")) {
      reply.type("text/html; charset=utf-8");
      return `<!doctype html><html><head><meta charset="utf-8"><title>stayup</title></head><body>
<h1>Count: <span id="count">${count}</span></h1>
<p>Served by <code id="instance">${escapeHtml(identity.instanceId)}</code>
in <code id="az">${escapeHtml(identity.availabilityZone)}</code> (${escapeHtml(identity.region)})</p>
</body></html>`;
    }
    return body;
  });

  let closing: Promise<void> | undefined;
  const shutdown = () => {
    closing ??= (async () => {
      await app.close();
      redis.disconnect();
    })();
    return closing;
  };
  return { app, redis, shutdown };
}
