import http from "node:http";
import type { AddressInfo } from "node:net";
import { type Dispatcher, Pool } from "undici";
import { StayupError } from "../../shared/errors.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher, TimedStackEvent } from "../events/bus.ts";
import type { InFlightRequests, Target, TargetGroupController } from "../target-group/controller.ts";
import { OutlierDetector, type OutlierDetectionSettings, type TryOutcome } from "./outlier-detection.ts";

export interface RetrySettings {
  maxAttempts: number;
  perTryTimeoutMs: number;
  budgetPercent: number;
  minRetryConcurrency: number;
}

/** How the balancer treats targets that fail or stall on real traffic (from `loadBalancer.*`). */
export interface TrafficPolicy {
  /** Retries of idempotent requests; without: 3 tries, no per-try timeout, no budget. */
  retries?: RetrySettings;
  /** Ejection of targets that fail on real traffic; without: none. */
  outlierDetection?: OutlierDetectionSettings;
}

/** What the balancer needs of the target group (a worker process gets it over IPC). */
export type TargetSource = Pick<TargetGroupController, "routable" | "get" | "reportConnectionFailure">;

/** A listener the region starts and stops: one balancer process, or several sharing one port. */
export interface Listener {
  url: string;
  listen(): Promise<string>;
  close(): Promise<void>;
}
import { redirectToHttps } from "./https.ts";

export interface LoadBalancerOptions {
  host: string;
  port: number;
  /** In a worker of several sharing the listener (node:cluster): do not bind exclusively. */
  shared?: boolean;
  /** Like the ALB's idle timeout: a target that sends no response headers for this long gets a 504. */
  targetTimeoutMs?: number;
  /** Largest request body buffered for a retry (413 above). */
  maxBodyBytes?: number;
  /** With HTTPS on: this (HTTP) listener answers 301 to that port, as the ALB's redirect listener. */
  redirectToHttpsPort?: () => number;
}

// RFC 9110 §9.2.2: a retry of these cannot change the outcome.
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
// Connection-level headers belong to one hop and are never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "expect",
  "host",
]);
// Answers up to this size are collected and written to the client in one piece.
const BUFFERED_RESPONSE_BYTES = 256 * 1024;
// Errors raised before a single byte of the request left this process: always safe to retry.
/** Marks a target's answer to a request it did not handle because it is shutting down (web service). */
const DRAINING_HEADER = "x-stayup-draining";
const TARGET_DRAINING = "STAYUP_TARGET_DRAINING";
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
  TARGET_DRAINING,
]);

/** A 5xx answer held back (not yet sent to the client) so the request can go to another target. */
interface HeldAnswer {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

type TryFailure = NodeJS.ErrnoException & {
  responseStarted?: boolean;
  held?: HeldAnswer;
  perTryTimeout?: boolean;
  /** A held error answer that grew too large: dropped, and the request goes elsewhere. */
  abandoned?: boolean;
};

const noRetries: RetrySettings = {
  maxAttempts: 3,
  perTryTimeoutMs: 0,
  budgetPercent: 100,
  minRetryConcurrency: Number.MAX_SAFE_INTEGER,
};

/**
 * The application load balancer of the local runtime: an HTTP listener that round-robins over the
 * target group's healthy targets with keep-alive upstream connections, and retries a request that
 * failed at the transport level on another target, so an instance crash is invisible to clients.
 * Gray failures too: a target that answers 5xx or stalls on real traffic is ejected by outlier
 * detection, and an idempotent request it failed or held past the per-try timeout goes to another
 * target, within a retry budget.
 */
export class LoadBalancer implements Listener, InFlightRequests {
  private readonly server: http.Server;
  private readonly pools = new Map<string, Pool>();
  private next = 0;
  private readonly retries: RetrySettings;
  private readonly outliers?: OutlierDetector;
  private returnTimer?: NodeJS.Timeout;
  /** Requests being handled, and retries among their tries in flight (for the retry budget). */
  private active = 0;
  private retriesInFlight = 0;
  private readonly targetTimeoutMs: number;
  private readonly maxBodyBytes: number;
  url = "";
  private listenerPort = "";
  /** Requests forwarded to each target and not yet answered: draining waits for them. */
  private readonly inFlightByTarget = new Map<string, number>();
  /** Called once per client request when its answer is sent (the dashboard's traffic meter). */
  observer?: (answer: { statusCode: number; latencyMs: number; instanceId?: string }) => void;
  /** A failure while routing, in a timer or an event handler is an event; the next request or tick retries. */
  private readonly guard: ControllerGuard;

  constructor(
    private readonly targetGroup: TargetSource,
    private readonly events: EventPublisher,
    readonly options: LoadBalancerOptions,
    policy: TrafficPolicy = {},
  ) {
    this.retries = policy.retries ?? noRetries;
    if (policy.outlierDetection) {
      // A target is slow only next to peers that answered within two per-try timeouts (1 s at least).
      const window = Math.max(1000, 2 * this.retries.perTryTimeoutMs);
      this.outliers = new OutlierDetector(policy.outlierDetection, window);
    }
    this.targetTimeoutMs = options.targetTimeoutMs ?? 60_000;
    this.maxBodyBytes = options.maxBodyBytes ?? 10 * 1024 * 1024;
    const redirectPort = options.redirectToHttpsPort;
    this.server = http.createServer(
      { keepAlive: true },
      redirectPort === undefined ? this.handleRequest : redirectToHttps(redirectPort),
    );
    this.server.keepAliveTimeout = 60_000;
    this.guard = new ControllerGuard({ controller: "load-balancer", events });
    events.subscribe(
      this.guard.wrap((e: TimedStackEvent) => {
        // A target that left the group will never be reached again: drop its idle connections.
        if (e.type === "target.deregistered") {
          this.closePool(e.instanceId);
          this.outliers?.forget(e.instanceId);
        }
      }, "the next event is handled as usual"),
    );
  }

  /** Requests forwarded to `instanceId` and not answered yet (InFlightRequests, for draining). */
  inFlight(instanceId: string): number {
    return this.inFlightByTarget.get(instanceId) ?? 0;
  }

  /** The balancer's request handling, shared by its HTTP listener and the HTTPS layer (https.ts). */
  readonly handleRequest: http.RequestListener = (req, res) => void this.handle(req, res);

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
          this.listenerPort = String(address.port);
          this.events.publish({ type: "load-balancer.listening", url: this.url });
          resolve(this.url);
        },
      );
    });
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    setTimeout(() => this.server.closeAllConnections(), 2000).unref();
    await closed;
    clearTimeout(this.returnTimer);
    await Promise.all([...this.pools.values()].map((p) => p.destroy()));
    this.pools.clear();
  }

  private pool(target: Target): Pool {
    let pool = this.pools.get(target.instanceId);
    if (!pool) {
      pool = new Pool(`http://${target.host}:${target.port}`, {
        connections: 128,
        keepAliveTimeout: 30_000,
        headersTimeout: this.targetTimeoutMs,
        bodyTimeout: this.targetTimeoutMs,
        connectTimeout: 1000,
      });
      this.pools.set(target.instanceId, pool);
    }
    return pool;
  }

  private closePool(instanceId: string): void {
    const pool = this.pools.get(instanceId);
    this.pools.delete(instanceId);
    void pool?.destroy().catch(() => undefined);
  }

  /** Where requests may go now: the target group's routable targets minus the ejected ones. */
  private rotation(): readonly Target[] {
    const routable = this.targetGroup.routable();
    if (!this.outliers) return routable;
    const now = Date.now();
    const outliers = this.outliers;
    const inRotation = routable.filter((t) => !outliers.isEjected(t.instanceId, now));
    // Ejection never empties the rotation (max ejection percent), but a target group that shrank
    // under an ejection could: fail open.
    return inRotation.length > 0 ? inRotation : routable;
  }

  /**
   * The target in rotation with the fewest requests in flight (the ALB's least outstanding
   * requests), round robin among equals, skipping the ones this request already tried. Plain round
   * robin kept sending a backed-up instance its full share while a freshly scaled-out one idled:
   * under the cpu-spike drill beside CPU-bound processes its queue grew past the client's timeout.
   */
  private pick(tried: Set<string>): Target | undefined {
    const rotation = this.rotation();
    const start = this.next++;
    let best: Target | undefined;
    let bestInFlight = Number.POSITIVE_INFINITY;
    for (let i = 0; i < rotation.length; i++) {
      const target = rotation[(start + i) % rotation.length];
      if (!target || tried.has(target.instanceId)) continue;
      const inFlight = this.inFlight(target.instanceId);
      if (inFlight < bestInFlight) {
        best = target;
        bestInFlight = inFlight;
      }
    }
    return best;
  }

  /** Whether an idempotent request that failed its try may go to another target (retry budget). */
  private mayRetry(method: string, attempt: number, tried: Set<string>): boolean {
    if (!IDEMPOTENT.has(method) || attempt + 1 >= this.retries.maxAttempts) return false;
    const budget = Math.max(
      this.retries.minRetryConcurrency,
      Math.floor((this.active * this.retries.budgetPercent) / 100),
    );
    if (this.retriesInFlight >= budget) return false;
    return this.rotation().some((t) => !tried.has(t.instanceId));
  }

  private hasFastPeer(target: Target): boolean {
    if (!this.outliers) return true;
    const rotation = this.targetGroup.routable().map((t) => t.instanceId);
    return this.outliers.hasFastPeer(target.instanceId, Date.now(), rotation);
  }

  private observe(target: Target, outcome: TryOutcome): void {
    if (!this.outliers) return;
    const now = Date.now();
    const rotation = this.targetGroup.routable().map((t) => t.instanceId);
    const ejection = this.outliers.observe(target.instanceId, outcome, now, rotation);
    if (!ejection) return;
    this.events.publish({ type: "target.ejected", az: target.az, ...ejection });
    this.scheduleReturns();
  }

  /** An ejection decided by another worker of the same listener: shared target health. */
  applyEjection(instanceId: string, forMs: number): void {
    if (!this.outliers) return;
    this.outliers.eject(instanceId, Date.now() + forMs);
    this.scheduleReturns();
  }

  /** Publishes each ejected target's return to rotation when its ejection runs out. */
  private scheduleReturns(): void {
    const outliers = this.outliers;
    const next = outliers?.nextReturn();
    clearTimeout(this.returnTimer);
    if (!outliers || next === undefined) return;
    this.returnTimer = setTimeout(
      () =>
        this.guard.run(() => {
          for (const instanceId of outliers.returned(Date.now())) {
            const target = this.targetGroup.get(instanceId);
            if (target) this.events.publish({ type: "target.returned", instanceId, az: target.az });
          }
          this.scheduleReturns();
        }, "ejected targets return when the next ejection or return is scheduled"),
      Math.max(0, next - Date.now()),
    );
    this.returnTimer.unref();
  }

  private async readBody(req: http.IncomingMessage): Promise<Buffer | undefined | "too-large"> {
    if (req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined) {
      return undefined;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.maxBodyBytes) return "too-large";
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  private forwardedHeaders(req: http.IncomingMessage): Record<string, string | string[]> {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    const client = req.socket.remoteAddress ?? "";
    const prior = req.headers["x-forwarded-for"];
    headers["x-forwarded-for"] = prior ? `${prior}, ${client}` : client;
    headers["x-forwarded-proto"] = "http";
    headers["x-forwarded-port"] = this.listenerPort;
    if (req.headers.host) headers["x-forwarded-host"] = req.headers.host;
    return headers;
  }

  private reply(res: http.ServerResponse, status: number, error: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify({ error, status });
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  /**
   * Sends one request to one target. Small responses are buffered and written with a single
   * `end()` (one write on the client socket); large or unsized ones stream with backpressure.
   * Rejects with `responseStarted` set once any byte of the answer was forwarded to the client;
   * with `held` when a small 5xx answer was kept back because `tryElsewhere()` allowed a retry; with
   * `perTryTimeout` when the per-try timeout passed without answer headers and a retry was allowed.
   * Resolves with the try's outcome for outlier detection.
   */
  private forward(
    pool: Pool,
    request: { method: string; path: string; headers: Record<string, string | string[]>; body?: Buffer },
    res: http.ServerResponse,
    tryElsewhere: { onError: () => boolean; onTimeout: () => boolean },
    onTimeout: () => void,
  ): Promise<TryOutcome> {
    return new Promise((resolve, reject) => {
      let status = 0;
      let headers: Record<string, string | string[]> = {};
      let chunks: Buffer[] | undefined;
      let streaming = false;
      let hold = false;
      let heldBytes = 0;
      let late = false;
      let controller: Dispatcher.DispatchController | undefined;
      const onClientClose = () => {
        if (!res.writableFinished) controller?.abort(new Error("client closed the connection"));
      };
      res.once("close", onClientClose);
      const perTryMs = this.retries.perTryTimeoutMs;
      let perTryTimer: NodeJS.Timeout | undefined;
      const onPerTryTimeout = () => {
        if (status !== 0) return;
        // Each per-try timeout that passes without answer headers counts: a try stuck on a stalled
        // target must keep weighing against it even when no new try reaches that target.
        onTimeout();
        late = true;
        if (tryElsewhere.onTimeout()) {
          controller?.abort(
            Object.assign(new Error(`no answer headers within ${perTryMs} ms`), {
              code: "STAYUP_PER_TRY_TIMEOUT",
              perTryTimeout: true,
            }),
          );
        } else {
          // No retry allowed now (budget spent, or no other target): let this try go on rather than
          // turn slowness into an error, and look again a per-try timeout later.
          perTryTimer = setTimeout(onPerTryTimeout, perTryMs);
        }
      };
      if (perTryMs > 0) perTryTimer = setTimeout(onPerTryTimeout, perTryMs);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (c) => {
          controller = c;
        },
        onResponseStart: (c, statusCode, responseHeaders) => {
          if (statusCode < 200) return; // 1xx interim answers are not forwarded
          clearTimeout(perTryTimer);
          if (responseHeaders[DRAINING_HEADER] !== undefined) {
            // The target is shutting down and did not handle the request: like a refused connection.
            c.abort(Object.assign(new Error("target is draining"), { code: TARGET_DRAINING }));
            return;
          }
          status = statusCode;
          headers = {};
          for (const [name, value] of Object.entries(responseHeaders)) {
            if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
          }
          const length = Number(responseHeaders["content-length"]);
          const sized = Number.isFinite(length) && length <= BUFFERED_RESPONSE_BYTES;
          // An error answer of unknown length is held too, in case another target does better.
          hold = statusCode >= 500 && (sized || !Number.isFinite(length)) && tryElsewhere.onError();
          if (sized || hold) {
            chunks = [];
          } else {
            streaming = true;
            res.writeHead(status, headers);
          }
        },
        onResponseData: (c, chunk) => {
          if (chunks) {
            chunks.push(chunk);
            heldBytes += chunk.length;
            if (hold && heldBytes > BUFFERED_RESPONSE_BYTES) {
              // Too large to hold: drop it and try elsewhere (the request is idempotent).
              c.abort(Object.assign(new Error(`${status} answer too large to hold`), { abandoned: true }));
            }
          } else if (!res.write(chunk)) {
            c.pause();
            res.once("drain", () => c.resume());
          }
        },
        onResponseEnd: () => {
          res.off("close", onClientClose);
          const body = !chunks ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
          if (hold && body) {
            reject(Object.assign(new Error(`answered ${status}`), { held: { status, headers, body } }));
            return;
          }
          if (body) {
            res.writeHead(status, headers);
            res.end(body);
          } else {
            res.end();
          }
          resolve(status >= 500 ? "5xx" : late ? "timeout" : "success");
        },
        onResponseError: (_c, error) => {
          clearTimeout(perTryTimer);
          res.off("close", onClientClose);
          reject(Object.assign(error, { responseStarted: streaming, responseReceived: status !== 0 }));
        },
      };
      pool.dispatch({ ...request, body: request.body ?? null }, handler);
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.active++;
    try {
      await this.route(req, res);
    } catch (error) {
      this.guard.report(error, "this request is answered 502; the next one is routed as usual");
      try {
        this.reply(res, 502, "the load balancer failed to route the request");
      } catch {
        res.destroy();
      }
    } finally {
      this.active--;
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let body: Buffer | undefined | "too-large";
    try {
      body = await this.readBody(req);
    } catch {
      return this.reply(res, 400, "request body could not be read");
    }
    if (body === "too-large") return this.reply(res, 413, "request body too large");
    const method = req.method ?? "GET";
    const startedAt = performance.now();
    let instanceId: string | undefined;
    res.once("close", () =>
      this.observer?.({
        statusCode: res.writableFinished ? res.statusCode : 0,
        latencyMs: performance.now() - startedAt,
        instanceId,
      }),
    );
    const upstreamRequest = { method, path: req.url ?? "/", headers: this.forwardedHeaders(req), body };
    const tried = new Set<string>();
    let lastError = "no healthy targets";
    let held: HeldAnswer | undefined;
    let timedOut = false;
    for (let attempt = 0; attempt < this.retries.maxAttempts; attempt++) {
      const target = this.pick(tried);
      if (!target) break;
      tried.add(target.instanceId);
      this.inFlightByTarget.set(target.instanceId, (this.inFlightByTarget.get(target.instanceId) ?? 0) + 1);
      const tryElsewhere = () => this.mayRetry(method, attempt, tried);
      // A slow try goes elsewhere only if another target is answering in time: when the whole
      // group is slow (an overload), abandoning tries would only add work for it.
      const slowTryElsewhere = () => this.hasFastPeer(target) && tryElsewhere();
      if (attempt > 0) this.retriesInFlight++;
      instanceId = target.instanceId;
      try {
        const outcome = await this.forward(
          this.pool(target),
          upstreamRequest,
          res,
          { onError: tryElsewhere, onTimeout: slowTryElsewhere },
          () => this.observe(target, "timeout"),
        );
        // A late answer was already counted as a timeout when the per-try timeout passed.
        if (outcome !== "timeout") this.observe(target, outcome);
        return;
      } catch (error) {
        const e = error as TryFailure;
        const code = e.code ?? "";
        lastError = `${target.instanceId}: ${code || e.message}`;
        if (e.held) {
          this.observe(target, "5xx");
          held = e.held;
          continue;
        }
        if (e.perTryTimeout || e.abandoned) {
          timedOut ||= e.perTryTimeout === true;
          continue;
        }
        // Part of the answer already went to the client: the only honest signal left is to close.
        if (e.responseStarted) return void res.destroy();
        if (NOT_SENT.has(code)) {
          this.targetGroup.reportConnectionFailure(
            target.instanceId,
            code === TARGET_DRAINING ? "target is shutting down (draining)" : `connection refused (${code})`,
          );
          continue;
        }
        if (code === "UND_ERR_HEADERS_TIMEOUT") return this.reply(res, 504, `target timed out: ${lastError}`);
        if (res.destroyed) return; // the client left; nobody to answer
        // The request may have reached the target: only a retry-safe method may go elsewhere.
        if (IDEMPOTENT.has(method)) continue;
        return this.reply(res, 502, `target failed: ${lastError}`);
      } finally {
        const left = (this.inFlightByTarget.get(target.instanceId) ?? 1) - 1;
        if (left > 0) this.inFlightByTarget.set(target.instanceId, left);
        else this.inFlightByTarget.delete(target.instanceId);
        if (attempt > 0) this.retriesInFlight--;
      }
    }
    if (res.destroyed) return;
    // The last target's own error answer says more than a generic 502.
    if (held) {
      res.writeHead(held.status, held.headers);
      return void res.end(held.body);
    }
    if (tried.size === 0) return this.reply(res, 503, "no healthy targets");
    if (timedOut) return this.reply(res, 504, `target timed out: ${lastError}`);
    return this.reply(res, 502, `every target tried failed; last: ${lastError}`);
  }
}
