import net from "node:net";
import {
  consumeSocket,
  type Http1Parser,
  type Http1ParserBinding,
  type HeadersComplete,
  setReading,
} from "./http1-parser.ts";

/** A request for a target, its headers (Host included) as one flat name/value list (hop-by-hop ones removed). */
export interface UpstreamRequest {
  method: string;
  path: string;
  headers: string[];
  body: Buffer | null;
}

/**
 * What one try gets back (undici's handler callbacks, which the balancer was built on): the
 * answer's headers as a flat list, its body in chunks, then completion or an error. `onData`
 * answering false pauses the target's connection until `resume` is called (backpressure).
 */
export interface UpstreamHandler {
  onConnect(abort: (error: Error) => void): void;
  onHeaders(statusCode: number, headers: string[], resume: () => void): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(error: Error): void;
}

export interface UpstreamPoolOptions {
  /** Connections to the target at most; more requests wait for one. */
  maxConnections: number;
  /** A request that waited this long for a connection fails with `STAYUP_QUEUE_TIMEOUT`, never sent. */
  queueTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long (or the target's own hint, less 1 s). */
  idleTimeoutMs: number;
  connectTimeoutMs: number;
  /** No answer headers for this long: the try fails with `STAYUP_HEADERS_TIMEOUT`. */
  headersTimeoutMs: number;
  /** No body bytes for this long once the answer started: `STAYUP_BODY_TIMEOUT`. */
  bodyTimeoutMs: number;
}

/** Error codes of this module (the balancer decides on them). */
export const UPSTREAM_CONNECT_TIMEOUT = "STAYUP_CONNECT_TIMEOUT";
export const UPSTREAM_HEADERS_TIMEOUT = "STAYUP_HEADERS_TIMEOUT";
export const UPSTREAM_BODY_TIMEOUT = "STAYUP_BODY_TIMEOUT";
/** The target closed the connection before its answer was complete. */
export const UPSTREAM_CLOSED = "STAYUP_TARGET_CLOSED";
/** No connection to the target came free in time: the request was never sent. */
export const UPSTREAM_QUEUE_TIMEOUT = "STAYUP_QUEUE_TIMEOUT";

const upstreamError = (message: string, code: string) => Object.assign(new Error(message), { code });
const KEEP_ALIVE_TIMEOUT = /timeout=(\d+)/i;
// Deadlines (headers, body) are checked this often: they are tens of seconds long, and one sweep
// costs less than a timer per request.
const SWEEP_MS = 250;

/** A request waiting for a connection to its target. */
interface Waiting {
  request: UpstreamRequest;
  handler: UpstreamHandler;
  /** performance.now() when it began to wait. */
  since: number;
}

/**
 * Keep-alive HTTP/1.1 connections to one target, written and parsed directly (llhttp, see
 * http1-parser.ts): one `write` per request, no per-request stream objects. A connection carries
 * one request at a time; the most recently used idle one is reused first, so the warm ones stay
 * warm and the rest time out. Requests beyond `maxConnections` wait in order; a waiting request
 * can be aborted (it leaves the queue and is never sent) and expires after `queueTimeoutMs`.
 */
export class UpstreamPool {
  private readonly idle: UpstreamConnection[] = [];
  private readonly busy = new Set<UpstreamConnection>();
  private waiting: Waiting[] = [];
  private connections = 0;
  private sweeper?: NodeJS.Timeout;
  private destroyed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly options: UpstreamPoolOptions,
    readonly http1: Http1ParserBinding,
  ) {}

  dispatch(request: UpstreamRequest, handler: UpstreamHandler): void {
    if (this.destroyed) {
      handler.onError(upstreamError("the target's connections are closed", "ECONNREFUSED"));
      return;
    }
    let connection = this.idle.pop();
    if (!connection) {
      if (this.connections >= this.options.maxConnections) {
        const waiting: Waiting = { request, handler, since: performance.now() };
        this.waiting.push(waiting);
        // The client leaving or the per-try timeout takes it out of the queue: never sent later.
        handler.onConnect((error) => {
          const at = this.waiting.indexOf(waiting);
          if (at < 0) return;
          this.waiting.splice(at, 1);
          handler.onError(error);
        });
        return;
      }
      this.connections++;
      connection = new UpstreamConnection(this);
    }
    this.busy.add(connection);
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweeper.unref();
    }
    connection.start(request, handler);
  }

  /** A connection finished its request: the next waiting request takes it, or it idles. */
  released(connection: UpstreamConnection): void {
    this.busy.delete(connection);
    const next = this.waiting.shift();
    if (next) {
      this.busy.add(connection);
      connection.start(next.request, next.handler);
      return;
    }
    connection.idleSince = performance.now();
    this.idle.push(connection);
  }

  /** A connection closed (by either side): it is no longer counted, and a waiting request gets a new one. */
  closed(connection: UpstreamConnection): void {
    this.connections--;
    this.busy.delete(connection);
    const at = this.idle.indexOf(connection);
    if (at >= 0) this.idle.splice(at, 1);
    const next = this.destroyed ? undefined : this.waiting.shift();
    if (next) this.dispatch(next.request, next.handler);
    if (this.connections === 0) this.stopSweeper();
  }

  private stopSweeper(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private sweep(): void {
    const now = performance.now();
    const first = this.waiting[0];
    if (first && now - first.since > this.options.queueTimeoutMs) {
      const expired = this.waiting.filter((w) => now - w.since > this.options.queueTimeoutMs);
      this.waiting = this.waiting.filter((w) => now - w.since <= this.options.queueTimeoutMs);
      for (const w of expired)
        w.handler.onError(
          upstreamError(
            `no connection to the target came free within ${this.options.queueTimeoutMs} ms`,
            UPSTREAM_QUEUE_TIMEOUT,
          ),
        );
    }
    for (const connection of this.busy) connection.checkDeadline(now);
    // The least recently used idle connections are at the bottom of the stack.
    for (const connection of this.idle) connection.closeIfIdleSince(now);
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    this.stopSweeper();
    const waiting = this.waiting.splice(0);
    for (const w of waiting)
      w.handler.onError(upstreamError("the target's connections are closed", "ECONNREFUSED"));
    for (const connection of [...this.idle, ...this.busy])
      connection.destroy(upstreamError("pool closed", UPSTREAM_CLOSED));
  }
}

function onConnectTimeout(connection: UpstreamConnection): void {
  connection.connectTimedOut();
}

/** One keep-alive connection to a target, carrying one request at a time. */
class UpstreamConnection {
  private readonly socket: net.Socket;
  private readonly parser: Http1Parser;
  private handler?: UpstreamHandler;
  private head = false;
  private keepAlive = true;
  private connected = false;
  private connectTimer?: NodeJS.Timeout;
  private idleTimeoutMs: number;
  /** When it last finished a request (performance.now()): idle ones close after the idle timeout. */
  idleSince = 0;
  /** When the try in flight fails for want of headers or body bytes (performance.now()). */
  private deadline = Number.POSITIVE_INFINITY;
  private headersReceived = false;
  private closed = false;
  /** The parser reads the socket itself (consumeSocket); otherwise it is fed from `data`. */
  private readonly consumed: boolean;

  constructor(private readonly pool: UpstreamPool) {
    this.idleTimeoutMs = pool.options.idleTimeoutMs;
    const P = pool.http1.HTTPParser;
    this.parser = new P();
    this.parser.initialize(P.RESPONSE, {}, 0, P.kLenientNone ?? 0);
    let pendingHeaders: string[] = [];
    this.parser[P.kOnHeaders | 0] = (headers: string[]) => {
      pendingHeaders = pendingHeaders.concat(headers);
    };
    this.parser[P.kOnHeadersComplete | 0] = ((
      _major,
      _minor,
      headers,
      _method,
      _url,
      status,
      _text,
      _up,
      keep,
    ) => {
      const all = headers ?? pendingHeaders;
      pendingHeaders = [];
      return this.onHeadersComplete(status ?? 0, all, keep);
    }) satisfies HeadersComplete;
    this.parser[P.kOnBody | 0] = (chunk: Buffer) => this.onBody(chunk);
    this.parser[P.kOnMessageComplete | 0] = () => this.onMessageComplete();
    this.parser[P.kOnExecute | 0] = (result: ReturnType<Http1Parser["execute"]>) => this.onExecute(result);
    this.socket = net.connect({ host: pool.host, port: pool.port, noDelay: true });
    // llhttp reads the answers in C++ (no stream machinery, no JS per read but its callbacks).
    this.consumed = consumeSocket(this.parser, this.socket);
    // Also keeps the stream flowing, so that `end` is emitted when the target closes.
    this.socket.on("data", (data: Buffer) => this.onExecute(this.parser.execute(data)));
    this.connectTimer = setTimeout(onConnectTimeout, pool.options.connectTimeoutMs, this);
    this.socket.once("connect", () => {
      this.connected = true;
      clearTimeout(this.connectTimer);
    });
    this.socket.on("error", (error) => this.destroy(error));
    this.socket.on("end", () => this.onSocketEnd());
    this.socket.on("close", () =>
      this.destroy(upstreamError("the target closed the connection", UPSTREAM_CLOSED)),
    );
  }

  start(request: UpstreamRequest, handler: UpstreamHandler): void {
    this.handler = handler;
    this.headersReceived = false;
    this.head = request.method === "HEAD";
    this.deadline = performance.now() + this.pool.options.headersTimeoutMs;
    handler.onConnect(this.abort);
    if (this.handler !== handler) return; // aborted at once
    let head = `${request.method} ${request.path} HTTP/1.1\r\n`;
    const headers = request.headers;
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i] as string;
      // The length is this request's own (the body was read whole).
      if (name.length === 14 && name.toLowerCase() === "content-length") continue;
      head += `${name}: ${headers[i + 1]}\r\n`;
    }
    const body = request.body;
    if (body) {
      head += `content-length: ${body.length}\r\n\r\n`;
      this.socket.write(Buffer.concat([Buffer.from(head, "latin1"), body]));
    } else this.socket.write(`${head}\r\n`, "latin1");
  }

  /** The balancer gives up on this try (per-try timeout, client gone, target draining). */
  private readonly abort = (error: Error): void => {
    const handler = this.handler;
    if (!handler) return;
    // The answer is not read to its end: the connection cannot carry another request.
    this.handler = undefined;
    this.closeSocket();
    handler.onError(error);
  };

  closeIfIdleSince(now: number): void {
    if (!this.handler && now - this.idleSince > this.idleTimeoutMs) this.closeSocket();
  }

  checkDeadline(now: number): void {
    if (now < this.deadline || !this.handler) return;
    this.destroy(
      this.headersReceived
        ? upstreamError(`no body bytes for ${this.pool.options.bodyTimeoutMs} ms`, UPSTREAM_BODY_TIMEOUT)
        : upstreamError(
            `no answer headers within ${this.pool.options.headersTimeoutMs} ms`,
            UPSTREAM_HEADERS_TIMEOUT,
          ),
    );
  }

  connectTimedOut(): void {
    if (!this.connected)
      this.destroy(
        upstreamError(`connect timeout (${this.pool.options.connectTimeoutMs} ms)`, UPSTREAM_CONNECT_TIMEOUT),
      );
  }

  /** After each read of the target's bytes. */
  private onExecute(result: ReturnType<Http1Parser["execute"]>): void {
    if (typeof result === "number" || this.closed) return;
    this.destroy(
      Object.assign(new Error(`invalid answer from the target: ${result.reason ?? result.message}`), {
        code: result.code ?? "HPE_INVALID",
      }),
    );
  }

  private onSocketEnd(): void {
    // An answer delimited by the connection's close ends here.
    if (this.handler && this.headersReceived) {
      const result = this.parser.finish();
      if (result) this.destroy(result);
    }
    this.destroy(upstreamError("the target closed the connection", UPSTREAM_CLOSED));
  }

  private onHeadersComplete(status: number, headers: string[], keepAlive: boolean): number {
    const handler = this.handler;
    if (!handler) {
      // An answer with no request in flight: the target broke the protocol; this connection is done.
      this.closeSocket();
      return 1;
    }
    if (status < 200) return 1; // an interim answer (100 Continue): the real one follows
    this.headersReceived = true;
    this.keepAlive = keepAlive;
    this.deadline = performance.now() + this.pool.options.bodyTimeoutMs;
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i] as string;
      if (name.length === 10 && name.toLowerCase() === "keep-alive") {
        // The target says how long it keeps an idle connection: close ours a second before.
        const hint = KEEP_ALIVE_TIMEOUT.exec(headers[i + 1] as string);
        if (hint)
          this.idleTimeoutMs = Math.max(
            0,
            Math.min(this.pool.options.idleTimeoutMs, Number(hint[1]) * 1000 - 1000),
          );
      }
    }
    handler.onHeaders(status, headers, this.resume);
    return this.head ? 1 : 0;
  }

  private readonly resume = (): void => {
    if (this.consumed) setReading(this.socket, true);
    else this.socket.resume();
  };

  private onBody(chunk: Buffer): void {
    const handler = this.handler;
    if (!handler) return;
    this.deadline = performance.now() + this.pool.options.bodyTimeoutMs;
    // The client reads slowly: stop reading the target until it drained (backpressure).
    if (!handler.onData(chunk)) {
      if (this.consumed) setReading(this.socket, false);
      else this.socket.pause();
    }
  }

  private onMessageComplete(): void {
    const handler = this.handler;
    if (!handler || !this.headersReceived) return; // the end of an interim answer
    this.handler = undefined;
    this.deadline = Number.POSITIVE_INFINITY;
    if (this.keepAlive && this.idleTimeoutMs > 0) this.pool.released(this);
    else this.closeSocket();
    handler.onComplete();
  }

  private closeSocket(): void {
    this.socket.destroy();
  }

  /** Closes the connection; a try in flight fails with `error`. */
  destroy(error: Error): void {
    const handler = this.handler;
    this.handler = undefined;
    if (!this.closed) {
      this.closed = true;
      clearTimeout(this.connectTimer);
      this.socket.destroy();
      // The stream must let go of the parser before it is freed; not from inside the parser's own
      // callbacks (this may run during `execute`).
      setImmediate(() => {
        if (this.consumed) this.parser.unconsume();
        this.parser.close();
      });
      this.pool.closed(this);
    }
    handler?.onError(error);
  }
}
