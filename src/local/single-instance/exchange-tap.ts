import { performance } from "node:perf_hooks";
import { type HeadersComplete, type Http1Parser, loadHttp1Parser } from "../load-balancer/http1-parser.ts";

/** One answer seen through the address, in the load balancer's terms (its `observer`). */
export interface ObservedAnswer {
  /** 0: the connection closed before the answer was complete. */
  statusCode: number;
  latencyMs: number;
  instanceId?: string;
}

interface PendingRequest {
  startedAt: number;
  head: boolean;
}

/**
 * Reads the HTTP/1.x exchanges of one forwarded TCP connection, without changing a byte of it:
 * the requests one way, the answers the other, matched in order (HTTP/1.1 answers in request
 * order). The address stays a TCP forwarder; this is only how the dashboard sees what went through
 * it. Anything it cannot follow (a parse error, an upgrade) stops the reading, never the connection;
 * so does an observer that throws (reported through `onError`). Parsed with llhttp, as the load
 * balancer parses (http1-parser.ts).
 */
export class ExchangeTap {
  private readonly pending: PendingRequest[] = [];
  private requests?: Http1Parser;
  private answers?: Http1Parser;
  private statusCode = 0;
  /** Answers completed on this connection: a connection lost with none was a request that failed. */
  private answered = 0;
  private finished = false;

  constructor(
    private readonly instanceId: string,
    private readonly observe: (answer: ObservedAnswer) => void,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    const http1 = loadHttp1Parser();
    if (!http1) {
      // This Node.js offers no llhttp binding (the load balancer refuses to start then anyway).
      this.finished = true;
      return;
    }
    const P = http1.HTTPParser;
    const requests = new P();
    const answers = new P();
    requests.initialize(P.REQUEST, {}, 0, P.kLenientNone ?? 0);
    answers.initialize(P.RESPONSE, {}, 0, P.kLenientNone ?? 0);
    for (const parser of [requests, answers]) {
      parser[P.kOnHeaders | 0] = () => undefined;
      parser[P.kOnBody | 0] = () => undefined;
    }
    requests[P.kOnHeadersComplete | 0] = ((_major, _minor, _headers, method, _url, _s, _t, upgrade) => {
      this.pending.push({ startedAt: performance.now(), head: http1.methods[method ?? -1] === "HEAD" });
      if (upgrade) this.stop();
      return 0;
    }) satisfies HeadersComplete;
    requests[P.kOnMessageComplete | 0] = () => undefined;
    answers[P.kOnHeadersComplete | 0] = ((_major, _minor, _headers, _method, _url, statusCode) => {
      const status = statusCode ?? 0;
      this.statusCode = status;
      if (status === 101) {
        this.stop();
        return 1;
      }
      // Answers with no body whatever their headers say (RFC 9112 §6.3): an interim 1xx, 204, 304,
      // and any answer to HEAD.
      const bodiless = status < 200 || status === 204 || status === 304;
      return bodiless || this.pending[0]?.head ? 1 : 0;
    }) satisfies HeadersComplete;
    answers[P.kOnMessageComplete | 0] = () => {
      // An interim answer (100 Continue) comes before the final one of the same request.
      if (this.statusCode < 200) return;
      const request = this.pending.shift();
      if (!request) return;
      this.answered++;
      this.observe({
        statusCode: this.statusCode,
        latencyMs: performance.now() - request.startedAt,
        instanceId: this.instanceId,
      });
    };
    this.requests = requests;
    this.answers = answers;
  }

  /** Bytes from the client, on their way to the instance. */
  request(chunk: Buffer): void {
    this.safely(() => {
      if (this.requests && typeof this.requests.execute(chunk) !== "number") this.stop();
    });
  }

  /** Bytes from the instance, on their way to the client. */
  answer(chunk: Buffer): void {
    this.safely(() => {
      if (this.answers && typeof this.answers.execute(chunk) !== "number") this.stop();
    });
  }

  /** The reading runs in the connection's event handlers: what it throws must not reach them. */
  private safely(read: () => void): void {
    try {
      read();
    } catch (error) {
      this.stop();
      this.onError(error);
    }
  }

  /**
   * The connection is over: the instance `ended` it (an answer delimited by its end is then
   * complete), it was `reset` on the instance's side (refused, or the instance died), or it was
   * otherwise `closed` (the client left, the address stopped). Every request left without an answer failed; so did a connection reset before it
   * carried any answer (a client connects to send a request: its request fails with the reset).
   */
  close(how: "ended" | "reset" | "closed"): void {
    if (this.finished) return;
    this.safely(() => {
      if (how === "ended") this.answers?.finish();
      this.finished = true;
      this.release();
      const now = performance.now();
      const failed = this.pending.map((r) => now - r.startedAt);
      this.pending.length = 0;
      if (how === "reset" && failed.length === 0 && this.answered === 0) failed.push(0);
      for (const latencyMs of failed) this.observe({ statusCode: 0, latencyMs, instanceId: this.instanceId });
    });
  }

  private stop(): void {
    this.release();
    this.pending.length = 0;
    this.finished = true;
  }

  /** Frees the parsers (not from inside their own callbacks: this may run during `execute`). */
  private release(): void {
    const parsers = [this.requests, this.answers];
    this.requests = undefined;
    this.answers = undefined;
    setImmediate(() => {
      for (const parser of parsers) parser?.close();
    });
  }
}
