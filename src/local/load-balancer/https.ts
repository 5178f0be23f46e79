import type http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { StayupError } from "../../shared/errors.ts";
import type { ClientRequest, ClientRequestHandler, ClientResponse, CloseListener } from "./http1-listener.ts";
import { replyError } from "./http1-listener.ts";
import type { EventPublisher } from "../events/bus.ts";
import { type BodyBudget, type ClientLimits, capClientConnections, clientLimits } from "./limits.ts";

/**
 * HTTPS as a thin layer over the load balancer, as the ALB's HTTPS listener: a TLS server whose
 * requests go to the balancer's own request handler, and the 301 the HTTP listener answers instead.
 */

/** The HTTP listener's answer when HTTPS is on: 301 to the same host and path over HTTPS. */
export function redirectToHttps(httpsPort: () => number): http.RequestListener {
  return (req, res) => {
    const port = httpsPort() === 443 ? "" : `:${httpsPort()}`;
    const host = (req.headers.host ?? "localhost").replace(/:\d+$/, "");
    res.writeHead(301, { location: `https://${host}${port}${req.url ?? "/"}`, "content-length": "0" });
    res.end();
  };
}

/**
 * The balancer's request handling as a `node:http` listener (for the HTTPS layer): reads the
 * request's whole body (`maxRequestBodyBytes` at most, 413 above; within the body budget shared
 * with the HTTP listener, 503 beyond) and hands it to `handle`.
 */
export function nodeRequestListener(
  handle: ClientRequestHandler,
  limits: ClientLimits,
  budget: BodyBudget,
): http.RequestListener {
  return (req, res) => void serveNodeRequest(handle, limits, budget, req, res);
}

async function serveNodeRequest(
  handle: ClientRequestHandler,
  limits: ClientLimits,
  budget: BodyBudget,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const response = new NodeResponse(res);
  let body: Buffer | undefined;
  // A body declared larger than the limit is refused before any of it is read.
  if (Number(req.headers["content-length"]) > limits.maxRequestBodyBytes)
    return replyError(response, 413, `request body too large (at most ${limits.maxRequestBodyBytes} bytes)`);
  if (req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined) {
    const held = { bytes: 0 };
    // The body is held until the answer is complete (or the client left).
    res.once("close", () => budget.give(held.bytes));
    let read: Buffer | "too-large" | "over-budget";
    try {
      read = await readBody(req, limits.maxRequestBodyBytes, budget, held);
    } catch {
      return replyError(response, 400, "request body could not be read");
    }
    if (read === "too-large")
      return replyError(
        response,
        413,
        `request body too large (at most ${limits.maxRequestBodyBytes} bytes)`,
      );
    if (read === "over-budget")
      return replyError(
        response,
        503,
        "the load balancer holds too many request bodies at the moment; try again",
      );
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
  handle(request, response, body);
}

async function readBody(
  req: http.IncomingMessage,
  maxBodyBytes: number,
  budget: BodyBudget,
  held: { bytes: number },
): Promise<Buffer | "too-large" | "over-budget"> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (held.bytes + chunk.length > maxBodyBytes) return "too-large";
    if (!budget.take(chunk.length)) return "over-budget";
    held.bytes += chunk.length;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
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

export interface HttpsListenerOptions {
  host: string;
  port: number;
  certificatePem: string;
  privateKeyPem: string;
  /** The balancer's client limits (deadline, connections, head size); left out: the defaults. */
  limits?: ClientLimits;
  /** Where connections refused at the cap are told (`load-balancer.connections-refused`). */
  events?: EventPublisher;
}

export class HttpsListener {
  private readonly server: https.Server;
  url = "";
  port = 0;

  constructor(
    handler: http.RequestListener,
    readonly options: HttpsListenerOptions,
  ) {
    const limits = options.limits ?? clientLimits();
    this.server = https.createServer(
      {
        cert: options.certificatePem,
        key: options.privateKeyPem,
        minVersion: "TLSv1.2",
        keepAlive: true,
        maxHeaderSize: limits.maxRequestHeadBytes,
        requestTimeout: limits.requestTimeoutMs,
        headersTimeout: limits.requestTimeoutMs,
      },
      handler,
    );
    this.server.keepAliveTimeout = 60_000;
    capClientConnections(this.server, limits.maxClientConnections, "https", options.events);
  }

  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once("error", (error: NodeJS.ErrnoException) =>
        reject(
          new StayupError(
            `HTTPS listener: cannot listen on ${this.options.host}:${this.options.port}: ${error.message}`,
            "change loadBalancer.local.httpsPort in stayup.config.ts to a free port",
          ),
        ),
      );
      this.server.listen({ host: this.options.host, port: this.options.port, exclusive: true }, () => {
        const address = this.server.address() as AddressInfo;
        this.port = address.port;
        this.url = `https://${address.address}:${address.port}`;
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
  }
}
