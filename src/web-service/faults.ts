import type { FastifyPluginCallback } from "fastify";
import fp from "fastify-plugin";

/**
 * Gray failures a drill can inject into one instance: the kind health checks miss, because
 * `/health` keeps passing while the page fails or is slow.
 */
export type PageFault =
  | { kind: "none" }
  /** GET / answers this status (default 500) at once. */
  | { kind: "errors"; status?: number }
  /** GET / waits this long before doing its work. */
  | { kind: "latency"; ms: number }
  /** GET / is accepted and never answered (until the fault is cleared). */
  | { kind: "stall" };

/** Faults on the path to Redis, for every command the page sends. */
export type RedisFault =
  | { kind: "none" }
  | { kind: "latency"; ms: number }
  /** Commands hang until the client's command timeout, as over a connection that stopped answering. */
  | { kind: "hang" };

/** The IPC message the local runtime sends an instance (only the runtime holds that channel). */
export interface FaultCommand {
  type: "fault";
  page?: PageFault;
  redis?: RedisFault;
}

export const isFaultCommand = (m: unknown): m is FaultCommand =>
  typeof m === "object" && m !== null && (m as { type?: unknown }).type === "fault";

export interface FaultHooks {
  readonly page: PageFault;
  readonly redis: RedisFault;
  apply(command: FaultCommand): void;
  /** Awaited before each Redis command of the page: adds the Redis fault's latency or hang. */
  beforeRedis(): Promise<void>;
}

declare module "fastify" {
  interface FastifyInstance {
    faults: FaultHooks;
  }
}

const PAGE_ROUTE = "/";

/**
 * A fastify plugin holding the instance's injected faults. Faults apply to `GET /` only, so the
 * load balancer's health check (`/health`) still passes: the failure is gray.
 */
const plugin: FastifyPluginCallback<{ redisCommandTimeoutMs: number }> = (app, opts, done) => {
  let page: PageFault = { kind: "none" };
  let redis: RedisFault = { kind: "none" };
  // Stalled requests and hung commands wake when the fault changes or the service closes.
  let wake: (() => void)[] = [];
  const wakeAll = () => {
    const waiting = wake;
    wake = [];
    for (const w of waiting) w();
  };
  const waitForChange = (ms?: number) =>
    new Promise<boolean>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => resolve(true), ms);
      wake.push(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });

  app.decorate("faults", {
    get page() {
      return page;
    },
    get redis() {
      return redis;
    },
    apply(command: FaultCommand) {
      if (command.page) page = command.page;
      if (command.redis) redis = command.redis;
      app.log.warn({ page, redis }, "injected faults changed");
      wakeAll();
    },
    async beforeRedis() {
      if (redis.kind === "latency") await waitForChange(redis.ms);
      else if (redis.kind === "hang") {
        const timedOut = await waitForChange(opts.redisCommandTimeoutMs);
        if (timedOut) throw new Error("Command timed out");
      }
    },
  } satisfies FaultHooks);

  app.addHook("onRequest", async (request, reply) => {
    if (page.kind === "none" || request.method !== "GET" || request.routeOptions.url !== PAGE_ROUTE) return;
    if (page.kind === "errors") {
      const status = page.status ?? 500;
      return reply.code(status).send({ error: "injected fault", status, fault: "errors" });
    }
    if (page.kind === "latency") await waitForChange(page.ms);
    else if (page.kind === "stall") await waitForChange();
  });
  // Before the server waits for in-flight requests: a stalled one must not hold up draining.
  app.addHook("preClose", (next) => {
    page = { kind: "none" };
    redis = { kind: "none" };
    wakeAll();
    next();
  });
  done();
};

export const faultHooks = fp(plugin, { name: "stayup-fault-hooks", fastify: "5.x" });
