import http from "node:http";
import type { AddressInfo } from "node:net";
import { type Dispatcher, Pool } from "undici";
import { StayupError } from "../../shared/errors.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { Target, TargetGroupController } from "../target-group/controller.ts";

export interface LoadBalancerOptions {
  host: string;
  port: number;
  /** How many targets one request may try before the client gets an error. */
  maxAttempts?: number;
  /** Like the ALB's idle timeout: a target that sends no response headers for this long gets a 504. */
  targetTimeoutMs?: number;
  /** Largest request body buffered for a retry (413 above). */
  maxBodyBytes?: number;
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
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/**
 * The application load balancer of the local runtime: an HTTP listener that round-robins over the
 * target group's healthy targets with keep-alive upstream connections, and retries a request that
 * failed at the transport level on another target, so an instance crash is invisible to clients.
 */
export class LoadBalancer {
  private readonly server: http.Server;
  private readonly pools = new Map<string, Pool>();
  private next = 0;
  private readonly maxAttempts: number;
  private readonly targetTimeoutMs: number;
  private readonly maxBodyBytes: number;
  url = "";
  private listenerPort = "";

  constructor(
    private readonly targetGroup: TargetGroupController,
    private readonly events: EventPublisher,
    readonly options: LoadBalancerOptions,
  ) {
    this.maxAttempts = options.maxAttempts ?? 3;
    this.targetTimeoutMs = options.targetTimeoutMs ?? 60_000;
    this.maxBodyBytes = options.maxBodyBytes ?? 10 * 1024 * 1024;
    this.server = http.createServer({ keepAlive: true }, (req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
    events.subscribe((e) => {
      // A target that left the group will never be reached again: drop its idle connections.
      if (e.type === "target.deregistered") this.closePool(e.instanceId);
    });
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
      this.server.listen({ host: this.options.host, port: this.options.port, exclusive: true }, () => {
        const address = this.server.address() as AddressInfo;
        this.url = `http://${address.address}:${address.port}`;
        this.listenerPort = String(address.port);
        this.events.publish({ type: "load-balancer.listening", url: this.url });
        resolve(this.url);
      });
    });
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    setTimeout(() => this.server.closeAllConnections(), 2000).unref();
    await closed;
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

  /** Round robin over the healthy targets, skipping the ones this request already tried. */
  private pick(tried: Set<string>): Target | undefined {
    const rotation = this.targetGroup.routable();
    for (let i = 0; i < rotation.length; i++) {
      const target = rotation[this.next++ % rotation.length];
      if (target && !tried.has(target.instanceId)) return target;
    }
    return undefined;
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
   * Rejects with `responseStarted` set once any byte of the answer was forwarded to the client.
   */
  private forward(
    pool: Pool,
    request: { method: string; path: string; headers: Record<string, string | string[]>; body?: Buffer },
    res: http.ServerResponse,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let status = 0;
      let headers: Record<string, string | string[]> = {};
      let chunks: Buffer[] | undefined;
      let streaming = false;
      let controller: Dispatcher.DispatchController | undefined;
      const onClientClose = () => {
        if (!res.writableFinished) controller?.abort(new Error("client closed the connection"));
      };
      res.once("close", onClientClose);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (c) => {
          controller = c;
        },
        onResponseStart: (_c, statusCode, responseHeaders) => {
          if (statusCode < 200) return; // 1xx interim answers are not forwarded
          status = statusCode;
          headers = {};
          for (const [name, value] of Object.entries(responseHeaders)) {
            if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
          }
          const length = Number(responseHeaders["content-length"]);
          if (Number.isFinite(length) && length <= BUFFERED_RESPONSE_BYTES) {
            chunks = [];
          } else {
            streaming = true;
            res.writeHead(status, headers);
          }
        },
        onResponseData: (c, chunk) => {
          if (chunks) {
            chunks.push(chunk);
          } else if (!res.write(chunk)) {
            c.pause();
            res.once("drain", () => c.resume());
          }
        },
        onResponseEnd: () => {
          res.off("close", onClientClose);
          if (chunks) {
            res.writeHead(status, headers);
            res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
          } else {
            res.end();
          }
          resolve();
        },
        onResponseError: (_c, error) => {
          res.off("close", onClientClose);
          reject(Object.assign(error, { responseStarted: streaming, responseReceived: status !== 0 }));
        },
      };
      pool.dispatch({ ...request, body: request.body ?? null }, handler);
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let body: Buffer | undefined | "too-large";
    try {
      body = await this.readBody(req);
    } catch {
      return this.reply(res, 400, "request body could not be read");
    }
    if (body === "too-large") return this.reply(res, 413, "request body too large");
    const method = req.method ?? "GET";
    const upstreamRequest = { method, path: req.url ?? "/", headers: this.forwardedHeaders(req), body };
    const tried = new Set<string>();
    let lastError = "no healthy targets";
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const target = this.pick(tried);
      if (!target) break;
      tried.add(target.instanceId);
      try {
        await this.forward(this.pool(target), upstreamRequest, res);
        return;
      } catch (error) {
        const e = error as NodeJS.ErrnoException & { responseStarted?: boolean };
        const code = e.code ?? "";
        lastError = `${target.instanceId}: ${code || e.message}`;
        // Part of the answer already went to the client: the only honest signal left is to close.
        if (e.responseStarted) return void res.destroy();
        if (NOT_SENT.has(code)) {
          this.targetGroup.reportConnectionFailure(target.instanceId, `connection refused (${code})`);
          continue;
        }
        if (code === "UND_ERR_HEADERS_TIMEOUT") return this.reply(res, 504, `target timed out: ${lastError}`);
        if (res.destroyed) return; // the client left; nobody to answer
        // The request may have reached the target: only a retry-safe method may go elsewhere.
        if (IDEMPOTENT.has(method)) continue;
        return this.reply(res, 502, `target failed: ${lastError}`);
      }
    }
    if (tried.size === 0) return this.reply(res, 503, "no healthy targets");
    return this.reply(res, 502, `every target tried failed; last: ${lastError}`);
  }
}
