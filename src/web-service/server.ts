import Fastify, { type FastifyInstance, LogController } from "fastify";
import { Redis, type RedisOptions } from "ioredis";
import client from "prom-client";
import { regionHealth } from "./region-health.ts";
import { faultHooks } from "./faults.ts";
import { AcknowledgedCounter } from "./acknowledged-counter.ts";
import { CpuQueue } from "./cpu-queue.ts";
import { loadSecretHeader, sameSecret } from "./load-secret.ts";

/** Who is serving: shown on every page so a user can watch the load balancer spread requests. */
export interface InstanceIdentity {
  instanceId: string;
  availabilityZone: string;
  region: string;
  /** The version that serves (bundle and settings hashed, given at launch): named in every `GET /`. */
  version?: string;
}

export interface WebServiceOptions {
  identity: InstanceIdentity;
  redis: RedisOptions;
  /**
   * Answer a count only after this many replicas acknowledged it (Redis WAIT), so a failover to a
   * replica never loses a count a client has seen. 0: no waiting (a single node).
   */
  waitForReplicas?: number;
  /** How long a count request holds and retries while Redis fails over (0: answer 503 at once). */
  writeHoldMs?: number;
  /**
   * Serve GET /load?cpuMs=N (burns N ms of CPU) to a request that carries this secret in the
   * `x-stayup-load-secret` header (the load drills get it from the stack's private state file);
   * any other request gets 404, as when it is unset (never on AWS).
   */
  loadSecret?: string;
  /** Redis key of the page counter (the seed's script incremented the wrong key; we use one). */
  counterKey?: string;
  logLevel?: string;
  /** A deliberately broken version (rollback drills): `/health` answers 503 forever. */
  neverHealthy?: boolean;
}

export interface WebService {
  app: FastifyInstance;
  redis: Redis;
  /** Stops accepting, lets in-flight requests finish, closes Redis. */
  shutdown(): Promise<void>;
  /** Sets the AZ learned after start (an ECS task's, from its metadata endpoint): page and metrics. */
  setAvailabilityZone(zone: string): void;
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

  const cpuQueue = new CpuQueue();
  const app = Fastify({
    logger: { level: options.logLevel ?? "info", base: { instanceId: identity.instanceId } },
    // Per-request logs would dominate the cost of a request this small; metrics count them instead.
    logController: new LogController({ disableRequestLogging: true }),
    // On close, idle keep-alive sockets are closed at once; busy ones finish their request first.
    forceCloseConnections: "idle",
    // Our own answer instead (below): it says the request was not handled at all.
    return503OnClosing: false,
  });

  // Once draining (SIGTERM), a request that still arrives on a kept-alive connection is answered 503
  // without being handled, marked `x-stayup-draining` and closing the connection: the load balancer
  // then sends it to another target whatever its method (nothing ran here) and takes this one out
  // of rotation at once, instead of passing the 503 on to the client.
  let draining = false;
  app.addHook("onRequest", async (_request, reply) => {
    if (!draining) return;
    reply.code(503).header("x-stayup-draining", "1").header("connection", "close").header("retry-after", "1");
    return reply.send({
      error: "service unavailable",
      reason: "draining: this instance is shutting down",
      ...identity,
    });
  });

  const redisCommandTimeoutMs = 2000;
  // Gray failures injected by the local runtime's drills (GET / only; /health keeps passing).
  void app.register(faultHooks, { redisCommandTimeoutMs });

  const redis = new Redis({
    // Fail fast while disconnected, so the page answers 503 at once instead of queueing.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: redisCommandTimeoutMs,
    // Reconnect forever, quickly: Redis coming back must heal every instance without a restart. At
    // most 250 ms between tries: a write held through a Sentinel failover (writeHoldMs, 4 s) must
    // not spend a second of it waiting for the next try after the new primary is named.
    retryStrategy: (attempt) => Math.min(50 * attempt, 250),
    lazyConnect: false,
    // A demoted primary answers READONLY: reconnect, and Sentinel names the new one.
    reconnectOnError: (err) => err.message.startsWith("READONLY"),
    // Through Sentinel: a Sentinel that accepts the connection but does not answer (stopped, or
    // starved of CPU) is passed over for the next one, not waited on forever.
    ...("sentinels" in options.redis ? { sentinelCommandTimeout: 1000, connectTimeout: 2000 } : {}),
    ...options.redis,
  });
  let lastRedisError = "not connected yet";
  let stopped = false;
  // ioredis gives up for good ("end") when a Sentinel's +switch-master reaches its failover detector
  // while it is asking a Sentinel for the primary (the detector cancels that connect, which then
  // fails with "Connection is closed." and no retry): every count answered 503 from then on. An end
  // that is not our shutdown is a reconnect, at the same pace as ioredis's own retries.
  redis.on("end", () => {
    if (stopped) return;
    lastRedisError = `${lastRedisError} (the Redis client had stopped retrying: reconnecting)`;
    setTimeout(() => {
      if (!stopped && redis.status === "end") redis.connect().catch(() => undefined);
    }, 250).unref();
  });
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
  app.get("/health", async (_request, reply) => {
    if (options.neverHealthy) return reply.code(503).send({ status: "broken on purpose", ...identity });
    return { status: "ok", instanceId: identity.instanceId, version: identity.version };
  });
  // The region's check (Route 53, the local failover probe): can this instance serve a count?
  void app.register(regionHealth, { redis, instanceId: identity.instanceId });

  const { loadSecret } = options;
  if (loadSecret) {
    const loadSkipped = new client.Counter({
      name: "stayup_load_skipped_total",
      help: "CPU load requests not run because their client had left while they waited",
      registers: [registry],
    });
    // A request that costs a known amount of CPU, so a drill can create real CPU load. The work
    // waits its turn in the CPU queue, so health checks are answered between two requests' work.
    app.get<{ Querystring: { cpuMs?: string } }>("/load", async (request, reply) => {
      // Only a drill burns CPU here: to anyone else this route does not exist.
      const given = request.headers[loadSecretHeader];
      if (typeof given !== "string" || !sameSecret(given, loadSecret)) {
        return reply.code(404).send({ error: "not found" });
      }
      const cpuMs = Math.min(Math.max(Number(request.query.cpuMs ?? 10) || 0, 0), 200);
      const socket = request.raw.socket;
      const spins = await cpuQueue.run(
        () => !socket.destroyed && !socket.readableEnded,
        () => {
          const until = process.hrtime.bigint() + BigInt(Math.round(cpuMs * 1e6));
          let n = 0;
          while (process.hrtime.bigint() < until) n++;
          return n;
        },
      );
      if (spins === undefined) {
        loadSkipped.inc();
        // Nobody reads the answer: close without one.
        reply.hijack();
        socket.destroy();
        return;
      }
      return { cpuMs, spins, instanceId: identity.instanceId };
    });
  }

  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", registry.contentType);
    return registry.metrics();
  });

  const counter = new AcknowledgedCounter(redis, {
    key: counterKey,
    replicas: options.waitForReplicas ?? 0,
    holdMs: options.writeHoldMs ?? 0,
  });
  app.get("/", async (request, reply) => {
    let count: number;
    try {
      await app.faults.beforeRedis();
      // 200 only for a count the required replicas hold; during a failover the request holds and
      // retries (bounded), then 503: never a 200 for a count that could vanish.
      count = await counter.increment();
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
in <code id="az">${escapeHtml(identity.availabilityZone)}</code> (${escapeHtml(identity.region)}),
version <code id="version">${escapeHtml(identity.version ?? "unknown")}</code></p>
</body></html>`;
    }
    return body;
  });

  let closing: Promise<void> | undefined;
  const shutdown = () => {
    closing ??= (async () => {
      draining = true;
      await app.close();
      stopped = true;
      redis.disconnect();
    })();
    return closing;
  };
  const setAvailabilityZone = (zone: string) => {
    identity.availabilityZone = zone;
    registry.setDefaultLabels({ instance_id: identity.instanceId, availability_zone: zone });
  };
  return { app, redis, shutdown, setAvailabilityZone };
}
