import http from "node:http";
import type { AddressInfo, Server } from "node:net";
import { StayupError } from "../../shared/errors.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher, TimedStackEvent } from "../events/bus.ts";
import type { InFlightRequests, Target, TargetGroupController } from "../target-group/controller.ts";
import {
  type ClientRequest,
  type ClientResponse,
  type CloseListener,
  Http1Listener,
} from "./http1-listener.ts";
import {
  CONTENT_LENGTH,
  HOP_BY_HOP,
  HOST,
  KEEP_ALIVE,
  OTHER,
  TRANSFER_ENCODING,
  X_FORWARDED_FOR,
  X_STAYUP_DRAINING,
  headerRole,
} from "./header-names.ts";
import { type Http1ParserBinding, loadHttp1Parser } from "./http1-parser.ts";
import { OutlierDetector, type OutlierDetectionSettings, type TryOutcome } from "./outlier-detection.ts";
import {
  UPSTREAM_CONNECT_TIMEOUT,
  UPSTREAM_HEADERS_TIMEOUT,
  UpstreamPool,
  type UpstreamHandler,
  type UpstreamRequest,
} from "./upstream-pool.ts";

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

/**
 * A listener the region starts and stops: one balancer process, or several sharing one port. Either
 * counts its requests in flight to each target, which draining waits for.
 */
export interface Listener extends InFlightRequests {
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
// Answers up to this size are collected and written to the client in one piece.
const BUFFERED_RESPONSE_BYTES = 256 * 1024;
// Errors raised before a single byte of the request left this process: always safe to retry.
const TARGET_DRAINING = "STAYUP_TARGET_DRAINING";
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  UPSTREAM_CONNECT_TIMEOUT,
  TARGET_DRAINING,
]);

/** A 5xx answer held back (not yet sent to the client) so the request can go to another target. */
interface HeldAnswer {
  status: number;
  /** Name/value pairs, flat (as `writeHead` takes them). */
  headers: string[];
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
  private readonly server: Server;
  /** Closes connections the way `http.Server` does: idle ones at once, the rest later. */
  private readonly connections: Pick<http.Server, "closeIdleConnections" | "closeAllConnections">;
  private readonly http1: Http1ParserBinding;
  private readonly pools = new Map<string, UpstreamPool>();
  private next = 0;
  private idsOf?: readonly Target[];
  private ids: readonly string[] = [];
  private readonly retries: RetrySettings;
  private readonly outliers?: OutlierDetector;
  private returnTimer?: NodeJS.Timeout;
  /** Requests being handled, and retries among their tries in flight (for the retry budget). */
  private active = 0;
  private retriesInFlight = 0;
  private readonly targetTimeoutMs: number;
  private readonly maxBodyBytes: number;
  url = "";
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
        maxBodyBytes: this.maxBodyBytes,
        keepAliveTimeoutMs: 60_000,
        headersTimeoutMs: 60_000,
      });
      this.server = listener.server;
      this.connections = listener;
    } else {
      const redirect = http.createServer({ keepAlive: true }, redirectToHttps(redirectPort));
      redirect.keepAliveTimeout = 60_000;
      this.server = redirect;
      this.connections = redirect;
    }
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

  /** The balancer's request handling for the HTTPS layer (https.ts), a `node:http` listener. */
  readonly handleRequest: http.RequestListener = (req, res) => void this.handleNodeRequest(req, res);

  /** A request read by either listener, with its whole body. */
  private readonly handleClient = (
    request: ClientRequest,
    response: ClientResponse,
    body: Buffer | undefined,
  ) => void this.handle(request, response, body);

  private async handleNodeRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const response = new NodeResponse(res);
    let body: Buffer | undefined;
    if (req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined) {
      let read: Buffer | "too-large";
      try {
        read = await this.readBody(req);
      } catch {
        return this.reply(response, 400, "request body could not be read");
      }
      if (read === "too-large") return this.reply(response, 413, "request body too large");
      body = read;
    }
    const request: ClientRequest = {
      method: req.method ?? "GET",
      url: req.url ?? "/",
      rawHeaders: req.rawHeaders,
      remoteAddress: req.socket.remoteAddress ?? "",
      listenerProtocol: "https",
      listenerPort: String(req.socket.localPort ?? ""),
    };
    await this.handle(request, response, body);
  }

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
    clearTimeout(this.returnTimer);
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
          maxConnections: 128,
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

  /** The routable targets' ids, rebuilt only when the target group's rotation changes. */
  private rotationIds(): readonly string[] {
    const routable = this.targetGroup.routable();
    if (routable !== this.idsOf) {
      this.idsOf = routable;
      this.ids = routable.map((t) => t.instanceId);
    }
    return this.ids;
  }

  /**
   * The target in rotation with the fewest requests in flight (the ALB's least outstanding
   * requests), round robin among equals, skipping the ones this request already tried. Plain round
   * robin kept sending a backed-up instance its full share while a freshly scaled-out one idled:
   * under the cpu-spike drill beside CPU-bound processes its queue grew past the client's timeout.
   * Walks the target group's array in place (no per-request copy: this runs for every request).
   */
  private pick(tried: readonly string[]): Target | undefined {
    const routable = this.targetGroup.routable();
    const start = this.next++;
    const now = this.outliers ? Date.now() : 0;
    const best = this.leastBusy(routable, start, tried, now);
    // Ejection never empties the rotation (max ejection percent), but a target group that shrank
    // under an ejection could: fail open.
    return best !== null ? best : (this.leastBusy(routable, start, tried, -1) ?? undefined);
  }

  /** `null` when every target is ejected at `now` (-1: ignore ejections); undefined: all tried. */
  private leastBusy(
    targets: readonly Target[],
    start: number,
    tried: readonly string[],
    now: number,
  ): Target | undefined | null {
    let best: Target | undefined;
    let bestInFlight = Number.POSITIVE_INFINITY;
    let inRotation = 0;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(start + i) % targets.length];
      if (!target || (now >= 0 && this.outliers?.isEjected(target.instanceId, now))) continue;
      inRotation++;
      if (tried.includes(target.instanceId)) continue;
      const inFlight = this.inFlight(target.instanceId);
      if (inFlight < bestInFlight) {
        best = target;
        bestInFlight = inFlight;
      }
    }
    return inRotation === 0 && targets.length > 0 ? null : best;
  }

  /** Whether an idempotent request that failed its try may go to another target (retry budget). */
  retryAllowed(method: string, attempt: number, tried: readonly string[]): boolean {
    if (!IDEMPOTENT.has(method) || attempt + 1 >= this.retries.maxAttempts) return false;
    const budget = Math.max(
      this.retries.minRetryConcurrency,
      Math.floor((this.active * this.retries.budgetPercent) / 100),
    );
    if (this.retriesInFlight >= budget) return false;
    return this.rotation().some((t) => !tried.includes(t.instanceId));
  }

  hasFastPeer(target: Target): boolean {
    if (!this.outliers) return true;
    return this.outliers.hasFastPeer(target.instanceId, Date.now(), this.rotationIds());
  }

  /** Records one try's outcome for outlier detection (and publishes the ejection it causes). */
  observe(target: Target, outcome: TryOutcome): void {
    if (!this.outliers) return;
    const now = Date.now();
    const ejection = this.outliers.observe(target.instanceId, outcome, now, this.rotationIds());
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

  private async readBody(req: http.IncomingMessage): Promise<Buffer | "too-large"> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.maxBodyBytes) return "too-large";
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  /**
   * The request's headers for the target, as an ALB forwards them: hop-by-hop ones dropped, Host
   * as the client sent it (the listener's address if it sent none), X-Forwarded-For with the
   * client appended, X-Forwarded-Proto and X-Forwarded-Port of the listener (the client's own
   * claims dropped). Read from the flat `rawHeaders`, duplicates as the client sent them.
   */
  private forwardedHeaders(req: ClientRequest): { headers: string[]; hasBody: boolean } {
    const raw = req.rawHeaders;
    const headers: string[] = [];
    let hasBody = false;
    let hasHost = false;
    let forwardedFor: string | undefined;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] as string;
      const value = raw[i + 1] as string;
      switch (headerRole(name)) {
        case OTHER:
        case X_STAYUP_DRAINING:
          headers.push(name, value);
          break;
        case CONTENT_LENGTH:
          hasBody = true;
          headers.push(name, value);
          break;
        case HOST:
          if (hasHost) break; // one Host (RFC 9112 §3.2)
          hasHost = true;
          headers.push(name, value);
          break;
        case TRANSFER_ENCODING:
          hasBody = true;
          break;
        case X_FORWARDED_FOR:
          forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
          break;
        default: // hop-by-hop, and the client's X-Forwarded-Proto and -Port
          break;
      }
    }
    if (!hasHost) headers.push("host", `${this.options.host}:${req.listenerPort}`);
    const client = req.remoteAddress;
    headers.push(
      "x-forwarded-for",
      forwardedFor ? `${forwardedFor}, ${client}` : client,
      "x-forwarded-proto",
      req.listenerProtocol,
      "x-forwarded-port",
      req.listenerPort,
    );
    return { headers, hasBody };
  }

  private reply(res: ClientResponse, status: number, error: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = Buffer.from(JSON.stringify({ error, status }));
    res.writeHead(status, ["content-type", "application/json", "content-length", String(body.length)]);
    res.end(body);
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
    return this.hasFastPeer(t.target) && this.retryAllowed(t.method, t.attempt, t.tried);
  }

  private async handle(req: ClientRequest, res: ClientResponse, body: Buffer | undefined): Promise<void> {
    this.active++;
    try {
      await this.route(req, res, body);
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

  private async route(req: ClientRequest, res: ClientResponse, body: Buffer | undefined): Promise<void> {
    const { headers, hasBody } = this.forwardedHeaders(req);
    const method = req.method;
    const exchange = new Exchange(this, res, performance.now());
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
    for (let attempt = 0; attempt < this.retries.maxAttempts; attempt++) {
      const target = this.pick(tried);
      if (!target) break;
      tried.push(target.instanceId);
      this.inFlightByTarget.set(target.instanceId, (this.inFlightByTarget.get(target.instanceId) ?? 0) + 1);
      if (attempt > 0) this.retriesInFlight++;
      exchange.instanceId = target.instanceId;
      const t = new ForwardTry(this, res, target, method, attempt, tried, this.retries.perTryTimeoutMs);
      exchange.current = t;
      try {
        const outcome = await t.run(this.pool(target), upstreamRequest);
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
        if (code === UPSTREAM_HEADERS_TIMEOUT) return this.reply(res, 504, `target timed out: ${lastError}`);
        if (res.destroyed) return; // the client left; nobody to answer
        // The request may have reached the target: only a retry-safe method may go elsewhere.
        if (IDEMPOTENT.has(method)) continue;
        return this.reply(res, 502, `target failed: ${lastError}`);
      } finally {
        exchange.current = undefined;
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
      return res.end(held.body);
    }
    if (tried.length === 0) return this.reply(res, 503, "no healthy targets");
    if (timedOut) return this.reply(res, 504, `target timed out: ${lastError}`);
    return this.reply(res, 502, `every target tried failed; last: ${lastError}`);
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
  ) {}

  closed(): void {
    const res = this.res;
    if (!res.writableFinished) this.current?.abort(new Error("client closed the connection"));
    this.balancer.observer?.({
      statusCode: res.writableFinished ? res.statusCode : 0,
      latencyMs: performance.now() - this.startedAt,
      instanceId: this.instanceId,
    });
  }
}

/** A `node:http` answer (the HTTPS listener's) as the balancer writes answers. */
class NodeResponse implements ClientResponse {
  constructor(private readonly res: http.ServerResponse) {}
  get headersSent(): boolean {
    return this.res.headersSent;
  }
  get destroyed(): boolean {
    return this.res.destroyed;
  }
  get writableFinished(): boolean {
    return this.res.writableFinished;
  }
  get statusCode(): number {
    return this.res.statusCode;
  }
  writeHead(statusCode: number, headers: string[]): void {
    this.res.writeHead(statusCode, headers);
  }
  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }
  end(body?: Buffer): void {
    if (body) this.res.end(body);
    else this.res.end();
  }
  destroy(): void {
    this.res.destroy();
  }
  onceDrain(listener: () => void): void {
    this.res.once("drain", listener);
  }
  onClose(listener: CloseListener): void {
    this.res.once("close", () => listener.closed());
  }
}

function onPerTryTimeout(t: ForwardTry): void {
  t.perTryTimeoutPassed();
}

/**
 * One try of one request at one target, as the upstream pool's handler (upstream-pool.ts: the
 * answer's headers as one flat list, no per-try closures or header objects, as this runs for every
 * request). Small
 * responses are buffered and written with a single `end()` (one write on the client socket); large
 * or unsized ones stream with backpressure. `run()` rejects with `responseStarted` set once any
 * byte of the answer was forwarded to the client; with `held` when a small 5xx answer was kept back
 * because a retry is allowed; with `perTryTimeout` when the per-try timeout passed without answer
 * headers and a retry was allowed. It resolves with the try's outcome for outlier detection.
 */
export class ForwardTry implements UpstreamHandler {
  private status = 0;
  private headers: string[] = [];
  private chunks?: Buffer[];
  private streaming = false;
  private hold = false;
  private heldBytes = 0;
  private late = false;
  private abortDispatch?: (error: Error) => void;
  private timer?: NodeJS.Timeout;
  private resolve!: (outcome: TryOutcome) => void;
  private reject!: (error: TryFailure) => void;

  constructor(
    private readonly balancer: LoadBalancer,
    private readonly res: ClientResponse,
    readonly target: Target,
    readonly method: string,
    readonly attempt: number,
    readonly tried: readonly string[],
    private readonly perTryMs: number,
  ) {}

  run(pool: UpstreamPool, request: UpstreamRequest): Promise<TryOutcome> {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      if (this.perTryMs > 0) this.timer = setTimeout(onPerTryTimeout, this.perTryMs, this);
      pool.dispatch(request, this);
    });
  }

  abort(error: Error): void {
    this.abortDispatch?.(error);
  }

  perTryTimeoutPassed(): void {
    if (this.status !== 0) return;
    // Each per-try timeout that passes without answer headers counts: a try stuck on a stalled
    // target must keep weighing against it even when no new try reaches that target.
    this.balancer.observe(this.target, "timeout");
    this.late = true;
    if (this.balancer.tryElsewhereOnTimeout(this)) {
      this.abort(
        Object.assign(new Error(`no answer headers within ${this.perTryMs} ms`), {
          code: "STAYUP_PER_TRY_TIMEOUT",
          perTryTimeout: true,
        }),
      );
    } else {
      // No retry allowed now (budget spent, or no other target): let this try go on rather than
      // turn slowness into an error, and look again a per-try timeout later.
      this.timer = setTimeout(onPerTryTimeout, this.perTryMs, this);
    }
  }

  onConnect(abort: (error: Error) => void): void {
    this.abortDispatch = abort;
  }

  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx interim answers are not forwarded
    clearTimeout(this.timer);
    const headers: string[] = [];
    let length = Number.NaN;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = rawHeaders[i] as string;
      const role = headerRole(name);
      if (role === X_STAYUP_DRAINING) {
        // The target is shutting down and did not handle the request: like a refused connection.
        this.abort(Object.assign(new Error("target is draining"), { code: TARGET_DRAINING }));
        return true;
      }
      if (role === HOP_BY_HOP || role === KEEP_ALIVE || role === TRANSFER_ENCODING) continue;
      const value = rawHeaders[i + 1] as string;
      if (role === CONTENT_LENGTH) length = Number(value);
      headers.push(name, value);
    }
    this.status = statusCode;
    this.headers = headers;
    const sized = Number.isFinite(length) && length <= BUFFERED_RESPONSE_BYTES;
    // An error answer of unknown length is held too, in case another target does better.
    this.hold =
      statusCode >= 500 && (sized || !Number.isFinite(length)) && this.balancer.tryElsewhereOnError(this);
    if (sized || this.hold) {
      this.chunks = [];
    } else {
      this.streaming = true;
      this.res.writeHead(statusCode, headers);
      this.resumeDispatch = resume;
    }
    return true;
  }

  private resumeDispatch?: () => void;

  onData(chunk: Buffer): boolean {
    if (this.chunks) {
      this.chunks.push(chunk);
      this.heldBytes += chunk.length;
      if (this.hold && this.heldBytes > BUFFERED_RESPONSE_BYTES) {
        // Too large to hold: drop it and try elsewhere (the request is idempotent).
        this.abort(Object.assign(new Error(`${this.status} answer too large to hold`), { abandoned: true }));
      }
      return true;
    }
    if (this.res.write(chunk)) return true;
    const resume = this.resumeDispatch;
    this.res.onceDrain(() => resume?.());
    return false;
  }

  onComplete(): void {
    const chunks = this.chunks;
    const body = !chunks ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    if (this.hold && body) {
      const held: HeldAnswer = { status: this.status, headers: this.headers, body };
      this.reject(Object.assign(new Error(`answered ${this.status}`), { held }));
      return;
    }
    if (body) {
      this.res.writeHead(this.status, this.headers);
      this.res.end(body);
    } else {
      this.res.end();
    }
    this.resolve(this.status >= 500 ? "5xx" : this.late ? "timeout" : "success");
  }

  onError(error: Error): void {
    clearTimeout(this.timer);
    this.reject(
      Object.assign(error, {
        responseStarted: this.streaming,
        responseReceived: this.status !== 0,
      }) as TryFailure,
    );
  }
}
