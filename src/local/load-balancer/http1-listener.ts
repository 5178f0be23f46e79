import { STATUS_CODES } from "node:http";
import net from "node:net";
import {
  consumeSocket,
  type Http1Parser,
  type Http1ParserBinding,
  type HeadersComplete,
  setReading,
} from "./http1-parser.ts";
import type { EventPublisher } from "../events/bus.ts";
import { type BodyBudget, type ClientLimits, capClientConnections } from "./limits.ts";

/** A client's request as the balancer routes it, whichever listener read it. */
export interface ClientRequest {
  method: string;
  url: string;
  /** Flat name/value list, as the client sent them. */
  rawHeaders: string[];
  remoteAddress: string;
  /** The listener the request came in on, as X-Forwarded-Proto and X-Forwarded-Port tell the target. */
  listenerProtocol: "http" | "https";
  listenerPort: string;
}

/**
 * The answer to a client (the part of `http.ServerResponse` the balancer uses, so the HTTPS
 * listener's `node:http` answers fit too). `writeHead` commits the status and headers; they go
 * out with the first body bytes or `end()`.
 */
export interface ClientResponse {
  readonly headersSent: boolean;
  /** The client is gone (or the answer was cut off). */
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
  readonly statusCode: number;
  writeHead(statusCode: number, headers: string[]): void;
  /** False: wait for `onceDrain` before writing more. */
  write(chunk: Buffer): boolean;
  end(body?: Buffer): void;
  destroy(): void;
  onceDrain(listener: () => void): void;
  /** `listener.closed()` is called once, when the answer is complete or the client went away. */
  onClose(listener: CloseListener): void;
}

/** An object rather than a function: no closure per request on the hot path. */
export interface CloseListener {
  closed(): void;
}

/** A JSON error answer (or, once the answer's head went out, the connection's end). */
export function replyError(res: ClientResponse, status: number, error: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify({ error, status }));
  res.writeHead(status, ["content-type", "application/json", "content-length", String(body.length)]);
  res.end(body);
}

export type ClientRequestHandler = (
  request: ClientRequest,
  response: ClientResponse,
  body: Buffer | undefined,
) => void;

export interface Http1ListenerOptions {
  /** Request deadline, connections, head and body sizes, answers queued (`loadBalancer.local.limits`). */
  limits: ClientLimits;
  /** Request bodies held by all connections (shared with the HTTPS layer). */
  bodyBudget: BodyBudget;
  /** An idle client connection is closed after this long (like the ALB's idle timeout). */
  keepAliveTimeoutMs: number;
  /** Where connections refused at the cap are told (`load-balancer.connections-refused`). */
  events?: EventPublisher;
}

/** Requests read ahead of the one being answered; past this, reading stops until they are answered. */
const PIPELINE_LIMIT = 16;
/**
 * A connection the balancer ended is destroyed if the client has not closed its side this long
 * after it was sent everything (a client still reading the end of its answer is not cut off).
 */
const LINGER_MS = 5000;

/**
 * The balancer's HTTP/1.1 listener on raw sockets: llhttp parses each request (http1-parser.ts),
 * the handler answers through a `ClientResponse` whose head and small body go out in one write.
 * Pipelined requests are answered in order, one at a time. Upgrades (WebSocket) are not proxied:
 * answered 501.
 *
 * No client can make it hold more than the limits allow: connections beyond
 * `maxClientConnections` are closed as they arrive; a request must arrive whole (head and body)
 * within `requestTimeoutMs` of its first byte (of the connection, for the first one), or gets 408;
 * its head is at most `maxRequestHeadBytes` (431), its body `maxRequestBodyBytes` (413) and all
 * bodies held at once `maxBufferedRequestBytesTotal` (503); a client that does not read its answers
 * is not read from once `maxQueuedResponseBytes` of them wait in its socket (write backpressure).
 */
export class Http1Listener {
  readonly server: net.Server;
  private readonly connections = new Set<ClientConnection>();
  private sweeper?: NodeJS.Timeout;

  constructor(
    readonly http1: Http1ParserBinding,
    readonly handler: ClientRequestHandler,
    readonly options: Http1ListenerOptions,
  ) {
    // Half-open: a client that ends its side after its request still gets the answer (as node:http).
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
      const connection = new ClientConnection(this, socket);
      this.connections.add(connection);
      socket.once("close", () => this.connections.delete(connection));
    });
    // Node closes a connection beyond the cap as it is accepted, before any JS runs for it; the
    // refusals are told as events.
    capClientConnections(this.server, options.limits.maxClientConnections, "http", options.events);
    this.server.on("listening", () => {
      // One sweep for every connection's deadlines instead of a socket timer refreshed on each
      // read and write.
      this.sweeper = setInterval(() => {
        const now = performance.now();
        for (const c of this.connections) c.checkDeadlines(now);
      }, 1000);
      this.sweeper.unref();
    });
    this.server.on("close", () => clearInterval(this.sweeper));
  }

  /** Closes the connections with no request in flight (as `http.Server.closeIdleConnections`). */
  closeIdleConnections(): void {
    for (const c of this.connections) c.closeIfIdle();
  }

  closeAllConnections(): void {
    for (const c of this.connections) c.destroySocket();
  }
}

interface PendingRequest extends ClientRequest {
  keepAlive: boolean;
  http10: boolean;
  body?: Buffer[];
  bodyBytes: number;
}

/** One client connection: its parser and the requests it sent, answered in order. */
class ClientConnection {
  private readonly parser: Http1Parser;
  private readonly queue: PendingRequest[] = [];
  private reading?: PendingRequest;
  private current?: RawResponse;
  /** No more requests are read (the last one asked to close, or a fault). */
  private closing = false;
  /** When the request being read must be complete (performance.now()); the first from the accept. */
  private requestDeadline: number;
  private lastActivityAt = performance.now();
  /** The balancer ended the connection at this time (performance.now()); 0: not yet. */
  private endedAt = 0;
  /** Everything the balancer wrote had left for the client at this time; 0: not yet. */
  private flushedAt = 0;
  /** The next request waits until the client reads its answers (write backpressure). */
  private waitingForDrain = false;
  /** Request body bytes this connection holds of the shared budget. */
  private heldBodyBytes = 0;
  /** The parser reads the socket itself (consumeSocket): no `data` events, one `kOnExecute` per read. */
  private readonly consumed: boolean;
  /** A request ended in the read being parsed (see `onExecute`). */
  private endedInRead = false;
  private readonly localPort: string;

  constructor(
    private readonly listener: Http1Listener,
    readonly socket: net.Socket,
  ) {
    this.localPort = String(socket.localPort ?? "");
    const limits = listener.options.limits;
    const budget = listener.options.bodyBudget;
    this.requestDeadline = this.lastActivityAt + limits.requestTimeoutMs;
    const P = listener.http1.HTTPParser;
    const methods = listener.http1.methods;
    this.parser = new P();
    this.parser.initialize(P.REQUEST, {}, limits.maxRequestHeadBytes, P.kLenientNone ?? 0);
    let pendingHeaders: string[] = [];
    let pendingUrl = "";
    this.parser[P.kOnHeaders | 0] = (headers: string[], url: string) => {
      pendingHeaders = pendingHeaders.concat(headers);
      pendingUrl += url;
    };
    this.parser[P.kOnHeadersComplete | 0] = ((
      _major,
      minor,
      headers,
      method,
      url,
      _s,
      _t,
      upgrade,
      keepAlive,
    ) => {
      // Reading goes on after a request that closed the connection (for the client's end), but
      // nothing it sends after it is handled (RFC 9112 §9.6).
      if (this.closing) {
        pendingHeaders = [];
        pendingUrl = "";
        return 0;
      }
      const request: PendingRequest = {
        method: methods[method ?? -1] ?? "GET",
        url: url ?? pendingUrl,
        rawHeaders: headers ?? pendingHeaders,
        remoteAddress: this.socket.remoteAddress ?? "",
        listenerProtocol: "http",
        listenerPort: this.localPort,
        keepAlive,
        http10: minor === 0,
        bodyBytes: 0,
      };
      pendingHeaders = [];
      pendingUrl = "";
      if (upgrade) {
        this.fail(501, "upgrades (WebSocket) are not proxied by the local load balancer");
        return 1;
      }
      this.reading = request;
      const raw = request.rawHeaders;
      let expectContinue = false;
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = raw[i] as string;
        // A body declared larger than the limit is refused before any of it is read (and before a
        // 100 Continue would invite it).
        if (
          name.length === 14 &&
          name.toLowerCase() === "content-length" &&
          Number(raw[i + 1]) > limits.maxRequestBodyBytes
        ) {
          this.reading = undefined;
          this.fail(413, `request body too large (at most ${limits.maxRequestBodyBytes} bytes)`);
          return 1;
        }
        if (name.length === 6 && name.toLowerCase() === "expect") {
          if (!/^100-continue$/i.test(raw[i + 1] as string)) {
            this.fail(417, "only Expect: 100-continue is supported");
            return 1;
          }
          expectContinue = true;
        }
      }
      if (expectContinue && this.queue.length === 0 && !this.current && !this.waitingForDrain)
        this.socket.write("HTTP/1.1 100 Continue\r\n\r\n");
      return 0;
    }) satisfies HeadersComplete;
    this.parser[P.kOnBody | 0] = (chunk: Buffer) => {
      const request = this.reading;
      if (!request) return;
      request.bodyBytes += chunk.length;
      if (request.bodyBytes > limits.maxRequestBodyBytes) {
        this.reading = undefined;
        this.fail(413, `request body too large (at most ${limits.maxRequestBodyBytes} bytes)`);
        return;
      }
      if (!budget.take(chunk.length)) {
        this.reading = undefined;
        this.fail(503, "the load balancer holds too many request bodies at the moment; try again");
        return;
      }
      this.heldBodyBytes += chunk.length;
      (request.body ??= []).push(chunk);
    };
    this.parser[P.kOnMessageComplete | 0] = () => {
      const request = this.reading;
      this.reading = undefined;
      this.endedInRead = true;
      this.requestDeadline = Number.POSITIVE_INFINITY;
      // Nothing after a request that asked to close is handled (RFC 9112 §9.6), even pipelined.
      if (!request || this.closing) return;
      if (!request.keepAlive) this.closing = true;
      this.queue.push(request);
      if (this.queue.length > PIPELINE_LIMIT) this.pauseReading();
      if (!this.current && !this.waitingForDrain) this.next();
    };
    // llhttp reads the socket in C++, as node:http's server does: no stream machinery and no JS per
    // read but the parser's callbacks. A socket without a handle of its own is fed from `data`.
    this.parser[P.kOnExecute | 0] = (result: ReturnType<Http1Parser["execute"]>) => this.onExecute(result);
    this.consumed = consumeSocket(this.parser, socket);
    // Also keeps the stream flowing, so that `end` is emitted when the client ends its side.
    socket.on("data", (data: Buffer) => this.onData(data));
    socket.on("error", () => undefined); // a client's reset; `close` follows
    socket.on("end", () => {
      // The client sent all it will: answer what it asked, then close.
      this.closing = true;
      if (!this.current && this.queue.length === 0) this.endSocket();
    });
    socket.once("close", () => {
      this.closing = true;
      this.queue.length = 0;
      budget.give(this.heldBodyBytes);
      this.heldBodyBytes = 0;
      this.current?.clientGone();
      // The stream must let go of the parser before it is freed.
      if (this.consumed) this.parser.unconsume();
      setImmediate(() => this.parser.close());
    });
  }

  private onData(data: Buffer): void {
    if (this.closing) return;
    this.onExecute(this.parser.execute(data));
  }

  /**
   * After each read. A request is incomplete when the read ended inside its body, or neither
   * inside a body nor at a request's end (inside its head): its deadline starts, once. (A read
   * that ends one request and starts another's head leaves the deadline to the next read; a
   * client that then sends nothing is closed by the idle timeout.)
   */
  private onExecute(result: ReturnType<Http1Parser["execute"]>): void {
    const now = performance.now();
    this.lastActivityAt = now;
    const ended = this.endedInRead;
    this.endedInRead = false;
    if (typeof result === "number") {
      if ((this.reading || !ended) && this.requestDeadline === Number.POSITIVE_INFINITY)
        this.requestDeadline = now + this.listener.options.limits.requestTimeoutMs;
      return;
    }
    if (this.closing) return; // what follows a request that closed the connection is not handled
    const code = result.code ?? "";
    if (code === "HPE_HEADER_OVERFLOW") this.fail(431, "request header fields too large");
    else this.fail(400, `bad request: ${result.reason ?? code}`);
  }

  /** Answers `status` once what is in flight is answered, and closes the connection. */
  private fail(status: number, error: string): void {
    if (this.closing && this.queue.length === 0 && !this.current) return this.destroySocket();
    this.closing = true;
    this.queue.length = 0;
    this.pauseReading();
    const body = JSON.stringify({ error, status });
    const answer = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
    if (this.current) this.current.then = () => this.endSocket(answer);
    else this.endSocket(answer);
  }

  /** Ends the balancer's side; a client that keeps its own open is cut off `LINGER_MS` later. */
  private endSocket(answer?: string): void {
    if (this.endedAt === 0) {
      this.endedAt = performance.now();
      this.socket.once("finish", () => (this.flushedAt = performance.now()));
    }
    if (answer === undefined) this.socket.end();
    else this.socket.end(answer);
  }

  private next(): void {
    const request = this.queue.shift();
    if (!request) {
      this.current = undefined;
      if (this.closing) this.endSocket();
      else this.resumeReading();
      return;
    }
    const response = new RawResponse(this, request.method === "HEAD", request.http10, request.keepAlive);
    response.bodyBytes = request.bodyBytes;
    this.current = response;
    const chunks = request.body;
    const body = chunks === undefined ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    this.listener.handler(request, response, body);
  }

  /** The answer in flight is complete: on to the next request, or close. */
  answered(response: RawResponse): void {
    if (this.current !== response) return;
    this.current = undefined;
    this.lastActivityAt = performance.now();
    this.listener.options.bodyBudget.give(response.bodyBytes);
    this.heldBodyBytes -= response.bodyBytes;
    const then = response.then;
    if (then) return then();
    if (!response.keepAlive) {
      this.closing = true;
      this.endSocket();
      return;
    }
    // The client has not read what it was sent: read and answer nothing more until it does.
    if (this.socket.writableLength > this.listener.options.limits.maxQueuedResponseBytes) {
      this.waitingForDrain = true;
      this.pauseReading();
      this.socket.once("drain", this.drained);
      return;
    }
    this.next();
  }

  private readonly drained = (): void => {
    this.waitingForDrain = false;
    if (!this.socket.destroyed && !this.current) this.next();
  };

  private pauseReading(): void {
    if (this.consumed) setReading(this.socket, false);
    else this.socket.pause();
  }

  private resumeReading(): void {
    if (this.consumed) setReading(this.socket, true);
    else this.socket.resume();
  }

  checkDeadlines(now: number): void {
    // Idle: no request in flight or queued since the keep-alive timeout.
    if (
      !this.current &&
      this.queue.length === 0 &&
      now - this.lastActivityAt > this.listener.options.keepAliveTimeoutMs
    )
      return this.destroySocket();
    // Waiting for the client to read its answers, and it read none of them for as long.
    if (this.waitingForDrain && now - this.lastActivityAt > this.listener.options.keepAliveTimeoutMs)
      return this.destroySocket();
    // Ended by the balancer, and the client keeps its side open: after it got everything, or
    // (reading nothing) for as long as an idle connection.
    if (this.flushedAt !== 0 && now - this.flushedAt > LINGER_MS) return this.destroySocket();
    if (this.endedAt !== 0 && now - this.endedAt > this.listener.options.keepAliveTimeoutMs)
      return this.destroySocket();
    if (now < this.requestDeadline) return;
    this.requestDeadline = Number.POSITIVE_INFINITY;
    this.fail(408, `request not received whole within ${this.listener.options.limits.requestTimeoutMs} ms`);
  }

  /** An answer whose end is the connection's (HTTP/1.0, unsized). */
  closeAfterAnswer(): void {
    this.closing = true;
    this.endSocket();
  }

  closeIfIdle(): void {
    if (!this.current && this.queue.length === 0) this.socket.destroy();
    else this.closing = true;
  }

  destroySocket(): void {
    this.socket.destroy();
  }
}

const CRLF = "\r\n";
const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1");

/** The answer to one request on a raw connection. */
class RawResponse implements ClientResponse {
  statusCode = 200;
  headersSent = false;
  destroyed = false;
  writableFinished = false;
  /** Run instead of reading the next request once this answer is complete (a pending error answer). */
  then?: () => void;
  /** The request's body bytes, given back to the shared budget once this answer is complete. */
  bodyBytes = 0;
  private headers: string[] = [];
  private flushed = false;
  private chunked = false;
  private closeListener?: CloseListener;
  private done = false;
  /** The body's end is the connection's end (an unsized answer to an HTTP/1.0 client). */
  private closeAfter = false;

  constructor(
    private readonly connection: ClientConnection,
    private readonly head: boolean,
    private readonly http10: boolean,
    readonly keepAlive: boolean,
  ) {}

  writeHead(statusCode: number, headers: string[]): void {
    this.statusCode = statusCode;
    this.headers = headers;
    this.headersSent = true;
  }

  /** The status line and headers; `length`: the whole body's, when known now. */
  private headBlock(length: number | undefined): string {
    let head = `HTTP/1.1 ${this.statusCode} ${STATUS_CODES[this.statusCode] ?? ""}${CRLF}`;
    let hasLength = false;
    const headers = this.headers;
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i] as string;
      if (name.length === 14 && name.toLowerCase() === "content-length") hasLength = true;
      head += `${name}: ${headers[i + 1]}${CRLF}`;
    }
    const bodyless = this.head || this.statusCode === 204 || this.statusCode === 304;
    if (!hasLength && !bodyless) {
      if (length !== undefined) head += `content-length: ${length}${CRLF}`;
      // An HTTP/1.0 client cannot read chunks: the body ends with the connection.
      else if (this.http10) this.closeAfter = true;
      else {
        this.chunked = true;
        head += `transfer-encoding: chunked${CRLF}`;
      }
    }
    if (!this.keepAlive || this.closeAfter) head += `connection: close${CRLF}`;
    else if (this.http10) head += `connection: keep-alive${CRLF}`;
    return head + CRLF;
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed) return true;
    const socket = this.connection.socket;
    if (!this.flushed) {
      this.flushed = true;
      socket.write(this.headBlock(undefined), "latin1");
    }
    if (this.head || chunk.length === 0) return true;
    if (!this.chunked) return socket.write(chunk);
    socket.cork();
    socket.write(`${chunk.length.toString(16)}${CRLF}`, "latin1");
    socket.write(chunk);
    const ok = socket.write(CRLF, "latin1");
    socket.uncork();
    return ok;
  }

  end(body?: Buffer): void {
    if (this.destroyed || this.done) return;
    this.headersSent = true;
    const socket = this.connection.socket;
    if (!this.flushed) {
      this.flushed = true;
      const head = this.headBlock(this.head ? undefined : (body?.length ?? 0));
      if (body && body.length > 0 && !this.head) {
        // Head and body in one buffer, one allocation: one write, one system call.
        const answer = Buffer.allocUnsafe(head.length + body.length);
        answer.write(head, 0, "latin1");
        body.copy(answer, head.length);
        socket.write(answer);
      } else socket.write(head, "latin1");
    } else if (body && body.length > 0) this.write(body);
    if (this.chunked) socket.write(LAST_CHUNK);
    this.finish(true);
    if (this.closeAfter) this.connection.closeAfterAnswer();
  }

  destroy(): void {
    if (this.done) return;
    this.destroyed = true;
    this.connection.destroySocket();
    this.finish(false);
  }

  /** The client's connection closed before the answer was complete. */
  clientGone(): void {
    if (this.done) return;
    this.destroyed = true;
    this.finish(false);
  }

  private finish(complete: boolean): void {
    this.done = true;
    this.writableFinished = complete;
    const listener = this.closeListener;
    this.closeListener = undefined;
    listener?.closed();
    if (complete && !this.closeAfter) this.connection.answered(this);
  }

  onceDrain(listener: () => void): void {
    this.connection.socket.once("drain", listener);
  }

  onClose(listener: CloseListener): void {
    this.closeListener = listener;
  }
}
