import http from "node:http";
import type { AddressInfo, Server } from "node:net";
import { StayupError } from "../../shared/errors.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher, TimedStackEvent } from "../events/bus.ts";
import type { InFlightRequests, Target } from "../target-group/controller.ts";
import { InFlightByTarget, TARGET_DRAINING } from "./draining.ts";
import { Ejections } from "./ejections.ts";
import { ForwardTry, type HeldAnswer, type TryFailure, type TryPolicy, sendHeld } from "./forward-try.ts";
import { forwardedHeaders } from "./forwarded-headers.ts";
import {
  type ClientRequest,
  type ClientResponse,
  type CloseListener,
  Http1Listener,
  replyError,
} from "./http1-listener.ts";
import { type Http1ParserBinding, loadHttp1Parser } from "./http1-parser.ts";
import { BodyBudget, type ClientLimits, capClientConnections, clientLimits } from "./limits.ts";
import { nodeRequestListener, redirectToHttps } from "./https.ts";
import type { OutlierDetectionSettings, TryOutcome } from "./outlier-detection.ts";
import { RetryBudget, type RetrySettings, isIdempotent, noRetries, notSent } from "./retries.ts";
import { LeastOutstandingRouter, type TargetSource } from "./routing.ts";
import {
  UPSTREAM_HEADERS_TIMEOUT,
  UPSTREAM_QUEUE_TIMEOUT,
  UpstreamPool,
  type UpstreamRequest,
} from "./upstream-pool.ts";

export type { TargetSource } from "./routing.ts";

/** How the balancer treats targets that fail or stall on real traffic (from `loadBalancer.*`). */
export interface TrafficPolicy {
  /** Retries of idempotent requests; without: 3 tries, no per-try timeout, no budget. */
  retries?: RetrySettings;
  /** Ejection of targets that fail on real traffic; without: none. */
  outlierDetection?: OutlierDetectionSettings;
}

/**
 * A listener the region starts and stops: one balancer process, or several sharing one port. Either
 * counts its requests in flight to each target, which draining waits for.
 */
/** One client request's answer as the load balancer sent it (the dashboard's traffic meter reads these). */
export interface ObservedRequest {
  /** 0: the connection closed before the answer was complete. */
  statusCode: number;
  latencyMs: number;
  instanceId?: string;
  path: string;
  /** The request's User-Agent: the failover's health checks name themselves by it. */
  userAgent?: string;
}

export interface Listener extends InFlightRequests {
  url: string;
  /** Called once per client request when its answer is sent; with workers, a moment later. */
  observer?: (answer: ObservedRequest) => void;
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface LoadBalancerOptions {
  host: string;
  port: number;
  /** In a worker of several sharing the listener (node:cluster): do not bind exclusively. */
  shared?: boolean;
  /** Like the ALB's idle timeout: a target that sends no response headers for this long gets a 504. */
  targetTimeoutMs?: number;
  /**
   * What one client may hold of this process (`loadBalancer.local.limits`, this process's share
   * with several workers); left out: the defaults.
   */
  limits?: Partial<ClientLimits>;
  /** With HTTPS on: this (HTTP) listener answers 301 to that port, as the ALB's redirect listener. */
  redirectToHttpsPort?: () => number;
}

/**
 * The application load balancer of the local runtime: an HTTP listener that sends each request to
 * the target with the fewest requests in flight (routing.ts) over keep-alive upstream connections
 * (upstream-pool.ts), and retries a request that failed at the transport level on another target
 * (retries.ts), so an instance crash is invisible to clients. Gray failures too: a target that
 * answers 5xx or stalls on real traffic is ejected by outlier detection (ejections.ts), and an
 * idempotent request it failed or held past the per-try timeout goes to another target, within a
 * retry budget, its 5xx answer held back meanwhile (forward-try.ts). Draining targets are tracked
 * in draining.ts.
 */
export class LoadBalancer implements Listener, InFlightRequests, TryPolicy {
  private readonly server: Server;
  /** Closes connections the way `http.Server` does: idle ones at once, the rest later. */
  private readonly connections: Pick<http.Server, "closeIdleConnections" | "closeAllConnections">;
  private readonly http1: Http1ParserBinding;
  private readonly pools = new Map<string, UpstreamPool>();
  private readonly retries: RetrySettings;
  private readonly budget: RetryBudget;
  private readonly router: LeastOutstandingRouter;
  private readonly ejections?: Ejections;
  private readonly targetTimeoutMs: number;
  private readonly limits: ClientLimits;
  /** Request bodies held at once, by both listeners. */
  private readonly bodyBudget: BodyBudget;
  url = "";
  /** Requests forwarded to each target and not yet answered: draining waits for them. */
  private readonly inFlightByTarget = new InFlightByTarget();
  /** Called once per client request when its answer is sent (the dashboard's traffic meter). */
  observer?: (answer: ObservedRequest) => void;
  /** A failure while routing, in a timer or an event handler is an event; the next request or tick retries. */
  private readonly guard: ControllerGuard;

  constructor(
    private readonly targetGroup: TargetSource,
    private readonly events: EventPublisher,
    readonly options: LoadBalancerOptions,
    policy: TrafficPolicy = {},
  ) {
    this.retries = policy.retries ?? noRetries;
    this.budget = new RetryBudget(this.retries);
    this.guard = new ControllerGuard({ controller: "load-balancer", events });
    this.router = new LeastOutstandingRouter(targetGroup, this.inFlightByTarget);
    if (policy.outlierDetection) {
      this.ejections = new Ejections(
        policy.outlierDetection,
        this.retries.perTryTimeoutMs,
        this.router.rotationIds,
        (instanceId) => targetGroup.get(instanceId),
        events,
        this.guard,
      );
      this.router.ejections = this.ejections;
    }
    this.targetTimeoutMs = options.targetTimeoutMs ?? 60_000;
    this.limits = clientLimits(options.limits);
    this.bodyBudget = new BodyBudget(this.limits.maxBufferedRequestBytesTotal);
    const http1 = loadHttp1Parser();
    if (!http1)
      throw new StayupError(
        "load balancer: this Node.js does not offer the HTTP/1.1 parser (llhttp, `_http_common`) the balancer runs on",
        "run stayup with Node.js 20, 22 or 24",
      );
    this.http1 = http1;
    const redirectPort = options.redirectToHttpsPort;
    if (redirectPort === undefined) {
      const listener = new Http1Listener(http1, this.handleClient, {
        limits: this.limits,
        bodyBudget: this.bodyBudget,
        keepAliveTimeoutMs: 60_000,
        events,
      });
      this.server = listener.server;
      this.connections = listener;
    } else {
      const redirect = http.createServer({ keepAlive: true }, redirectToHttps(redirectPort));
      redirect.keepAliveTimeout = 60_000;
      capClientConnections(redirect, this.limits.maxClientConnections, "http", events);
      redirect.requestTimeout = this.limits.requestTimeoutMs;
      redirect.headersTimeout = this.limits.requestTimeoutMs;
      this.server = redirect;
      this.connections = redirect;
    }
    this.handleRequest = nodeRequestListener(this.handleClient, this.limits, this.bodyBudget);
    events.subscribe(
      this.guard.wrap((e: TimedStackEvent) => {
        // A target that left the group will never be reached again: drop its idle connections.
        if (e.type === "target.deregistered") {
          this.closePool(e.instanceId);
          this.ejections?.forget(e.instanceId);
        }
      }, "the next event is handled as usual"),
    );
  }

  /** Requests forwarded to `instanceId` and not answered yet (InFlightRequests, for draining). */
  inFlight(instanceId: string): number {
    return this.inFlightByTarget.inFlight(instanceId);
  }

  /** The balancer's request handling for the HTTPS layer (https.ts), a `node:http` listener. */
  readonly handleRequest: http.RequestListener;

  /** A request read by either listener, with its whole body. */
  private readonly handleClient = (
    request: ClientRequest,
    response: ClientResponse,
    body: Buffer | undefined,
  ) => void this.handle(request, response, body);

  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once("error", (error: NodeJS.ErrnoException) => {
        reject(
          new StayupError(
            `load balancer: cannot listen on ${this.options.host}:${this.options.port}: ${
              error.code === "EADDRINUSE" ? "the port is already in use by another process" : error.message
            }`,
            "pass --port with a free port, or change loadBalancer.local.port in stayup.config.ts",
          ),
        );
      });
      this.server.listen(
        { host: this.options.host, port: this.options.port, exclusive: !this.options.shared },
        () => {
          const address = this.server.address() as AddressInfo;
          this.url = `http://${address.address}:${address.port}`;
          this.events.publish({ type: "load-balancer.listening", url: this.url });
          resolve(this.url);
        },
      );
    });
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.connections.closeIdleConnections();
    setTimeout(() => this.connections.closeAllConnections(), 2000).unref();
    await closed;
    this.ejections?.stop();
    await Promise.all([...this.pools.values()].map((p) => p.destroy()));
    this.pools.clear();
  }

  private pool(target: Target): UpstreamPool {
    let pool = this.pools.get(target.instanceId);
    if (!pool) {
      pool = new UpstreamPool(
        target.host,
        target.port,
        {
          maxConnections: this.limits.maxConnectionsPerTarget,
          queueTimeoutMs: this.limits.targetQueueTimeoutMs,
          idleTimeoutMs: 30_000,
          headersTimeoutMs: this.targetTimeoutMs,
          bodyTimeoutMs: this.targetTimeoutMs,
          connectTimeoutMs: 1000,
        },
        this.http1,
      );
      this.pools.set(target.instanceId, pool);
    }
    return pool;
  }

  private closePool(instanceId: string): void {
    const pool = this.pools.get(instanceId);
    this.pools.delete(instanceId);
    void pool?.destroy().catch(() => undefined);
  }

  /** Whether an idempotent request that failed its try may go to another target (retry budget). */
  retryAllowed(method: string, attempt: number, tried: readonly string[]): boolean {
    return this.budget.allows(method, attempt) && this.router.hasUntried(tried);
  }

  /** Records one try's outcome for outlier detection (and publishes the ejection it causes). */
  observe(target: Target, outcome: TryOutcome, latencyMs?: number): void {
    this.ejections?.observe(target, outcome, latencyMs);
  }

  /** An ejection decided by another worker of the same listener: shared target health. */
  applyEjection(instanceId: string, forMs: number): void {
    this.ejections?.apply(instanceId, forMs);
  }

  /** A try at `target` may give up on a 5xx answer for another target (ForwardTry). */
  tryElsewhereOnError(t: ForwardTry): boolean {
    return this.retryAllowed(t.method, t.attempt, t.tried);
  }

  /**
   * A slow try goes elsewhere only if another target is answering in time: when the whole group is
   * slow (an overload), abandoning tries would only add work for it (ForwardTry).
   */
  tryElsewhereOnTimeout(t: ForwardTry): boolean {
    const fastPeer = this.ejections ? this.ejections.hasFastPeer(t.target.instanceId) : true;
    return fastPeer && this.retryAllowed(t.method, t.attempt, t.tried);
  }

  private async handle(req: ClientRequest, res: ClientResponse, body: Buffer | undefined): Promise<void> {
    this.budget.requestStarted();
    try {
      await this.route(req, res, body);
    } catch (error) {
      this.guard.report(error, "this request is answered 502; the next one is routed as usual");
      try {
        replyError(res, 502, "the load balancer failed to route the request");
      } catch {
        res.destroy();
      }
    } finally {
      this.budget.requestEnded();
    }
  }

  private async route(req: ClientRequest, res: ClientResponse, body: Buffer | undefined): Promise<void> {
    const { headers, hasBody, refusal } = forwardedHeaders(req, this.options.host);
    if (refusal) return replyError(res, 400, refusal);
    const method = req.method;
    const exchange = new Exchange(this, res, performance.now(), req.url, req.rawHeaders);
    res.onClose(exchange);
    const upstreamRequest: UpstreamRequest = {
      method,
      path: req.url,
      headers,
      // A declared empty body is forwarded as one (Content-Length: 0).
      body: body ?? (hasBody ? Buffer.alloc(0) : null),
    };
    const tried: string[] = [];
    let lastError = "no healthy targets";
    let held: HeldAnswer | undefined;
    let timedOut = false;
    let queueTimedOut = false;
    for (let attempt = 0; attempt < this.retries.maxAttempts; attempt++) {
      // The client left between tries: nothing more is sent for it.
      if (attempt > 0 && res.destroyed) return;
      const target = this.router.pick(tried);
      if (!target) break;
      tried.push(target.instanceId);
      this.inFlightByTarget.began(target.instanceId);
      this.budget.tryStarted(attempt);
      exchange.instanceId = target.instanceId;
      const t = new ForwardTry(this, res, target, method, attempt, tried, this.retries.perTryTimeoutMs);
      exchange.current = t;
      try {
        const outcome = await t.run(this.pool(target), upstreamRequest);
        // A late answer was already counted as a timeout when the per-try timeout passed.
        if (outcome !== "timeout") this.observe(target, outcome, t.elapsedMs());
        return;
      } catch (error) {
        const e = error as TryFailure;
        const code = e.code ?? "";
        lastError = `${target.instanceId}: ${code || e.message}`;
        if (e.held) {
          this.observe(target, "5xx", t.elapsedMs());
          held = e.held;
          continue;
        }
        // Waited too long for a connection to the target, and was never sent: another may be free.
        if (code === UPSTREAM_QUEUE_TIMEOUT) {
          queueTimedOut = true;
          continue;
        }
        if (e.perTryTimeout || e.abandoned) {
          timedOut ||= e.perTryTimeout === true;
          continue;
        }
        // Part of the answer already went to the client: the only honest signal left is to close.
        if (e.responseStarted) return void res.destroy();
        if (notSent(code)) {
          this.targetGroup.reportConnectionFailure(
            target.instanceId,
            code === TARGET_DRAINING ? "target is shutting down (draining)" : `connection refused (${code})`,
          );
          continue;
        }
        if (code === UPSTREAM_HEADERS_TIMEOUT) return replyError(res, 504, `target timed out: ${lastError}`);
        if (res.destroyed) return; // the client left; nobody to answer
        // The request may have reached the target: only a retry-safe method may go elsewhere.
        if (isIdempotent(method)) continue;
        return replyError(res, 502, `target failed: ${lastError}`);
      } finally {
        exchange.current = undefined;
        this.inFlightByTarget.ended(target.instanceId);
        this.budget.tryEnded(attempt);
      }
    }
    if (res.destroyed) return;
    // The last target's own error answer says more than a generic 502.
    if (held) return sendHeld(res, held);
    if (tried.length === 0) return replyError(res, 503, "no healthy targets");
    if (timedOut) return replyError(res, 504, `target timed out: ${lastError}`);
    if (queueTimedOut) return replyError(res, 503, `targets busy: ${lastError}`);
    return replyError(res, 502, `every target tried failed; last: ${lastError}`);
  }
}

/** One client request: what its answer's end needs (the traffic meter, aborting the try in flight). */
class Exchange implements CloseListener {
  instanceId?: string;
  /** The try in flight, aborted if the client leaves. */
  current?: ForwardTry;
  constructor(
    readonly balancer: LoadBalancer,
    readonly res: ClientResponse,
    readonly startedAt: number,
    /** The request's path (and query). */
    readonly path: string,
    /** As the client sent them: the observer gets the User-Agent (who asked: a client, or a health check). */
    private readonly rawHeaders: string[],
  ) {}

  closed(): void {
    const res = this.res;
    if (!res.writableFinished) this.current?.abort(new Error("client closed the connection"));
    const observer = this.balancer.observer;
    if (!observer) return;
    observer({
      statusCode: res.writableFinished ? res.statusCode : 0,
      latencyMs: performance.now() - this.startedAt,
      instanceId: this.instanceId,
      path: this.path,
      userAgent: headerValue(this.rawHeaders, "user-agent"),
    });
  }
}

/** A header's first value from a flat name/value list (names compared without case). */
function headerValue(rawHeaders: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2)
    if (rawHeaders[i]?.toLowerCase() === name) return rawHeaders[i + 1];
  return undefined;
}
