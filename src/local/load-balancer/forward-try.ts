/**
 * One try of one request at one target, and the 5xx answers it holds back: a small error answer is
 * kept (not sent to the client) while a retry is allowed, so the request can go to another target
 * and the client sees the other target's answer, or this one's if none does better.
 */
import type { Target } from "../target-group/controller.ts";
import type { ClientResponse } from "./http1-listener.ts";
import {
  CONNECTION,
  CONTENT_LENGTH,
  HOP_BY_HOP,
  KEEP_ALIVE,
  TRANSFER_ENCODING,
  X_STAYUP_DRAINING,
  headerRole,
  nominatedFields,
  withoutNominated,
} from "./header-names.ts";
import { targetDraining } from "./draining.ts";
import type { TryOutcome } from "./outlier-detection.ts";
import type { UpstreamHandler, UpstreamPool, UpstreamRequest } from "./upstream-pool.ts";

// Answers up to this size are collected and written to the client in one piece.
const BUFFERED_RESPONSE_BYTES = 256 * 1024;

/** A 5xx answer held back (not yet sent to the client) so the request can go to another target. */
export interface HeldAnswer {
  status: number;
  /** Name/value pairs, flat (as `writeHead` takes them). */
  headers: string[];
  body: Buffer;
}

export type TryFailure = NodeJS.ErrnoException & {
  responseStarted?: boolean;
  held?: HeldAnswer;
  perTryTimeout?: boolean;
  /** A held error answer that grew too large: dropped, and the request goes elsewhere. */
  abandoned?: boolean;
};

/** Sends a held answer: the last target's own error says more than a generic 502. */
export function sendHeld(res: ClientResponse, held: HeldAnswer): void {
  res.writeHead(held.status, held.headers);
  res.end(held.body);
}

/** What a try asks of the balancer: its retry decisions and outlier detection. */
export interface TryPolicy {
  /** Records a try's outcome (and, answered, how long it took) for outlier detection. */
  observe(target: Target, outcome: TryOutcome, latencyMs?: number): void;
  /** A try may give up on a 5xx answer for another target. */
  tryElsewhereOnError(t: ForwardTry): boolean;
  /** A try past its per-try timeout may be abandoned for another target. */
  tryElsewhereOnTimeout(t: ForwardTry): boolean;
}

function onPerTryTimeout(t: ForwardTry): void {
  t.perTryTimeoutPassed();
}

/**
 * One try of one request at one target, as the upstream pool's handler (upstream-pool.ts: the
 * answer's headers as one flat list, no per-try closures or header objects, as this runs for every
 * request). Small responses are buffered and written with a single `end()` (one write on the
 * client socket); large or unsized ones stream with backpressure. `run()` rejects with `responseStarted` set once any
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
  private startedAt = 0;
  private resolve!: (outcome: TryOutcome) => void;
  private reject!: (error: TryFailure) => void;

  constructor(
    private readonly policy: TryPolicy,
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
      this.startedAt = performance.now();
      if (this.perTryMs > 0) this.timer = setTimeout(onPerTryTimeout, this.perTryMs, this);
      pool.dispatch(request, this);
    });
  }

  /** Milliseconds since the try was dispatched. */
  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  abort(error: Error): void {
    this.abortDispatch?.(error);
  }

  perTryTimeoutPassed(): void {
    if (this.status !== 0) return;
    // Each per-try timeout that passes without answer headers counts: a try stuck on a stalled
    // target must keep weighing against it even when no new try reaches that target.
    this.policy.observe(this.target, "timeout");
    this.late = true;
    if (this.policy.tryElsewhereOnTimeout(this)) {
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
    let headers: string[] = [];
    let length = Number.NaN;
    let connection: string | undefined;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = rawHeaders[i] as string;
      const role = headerRole(name);
      if (role === X_STAYUP_DRAINING) {
        // The target is shutting down and did not handle the request: like a refused connection.
        this.abort(targetDraining());
        return true;
      }
      const value = rawHeaders[i + 1] as string;
      // Hop-by-hop (RFC 9110 §7.6.1); the client's connection is framed by the balancer.
      if (role === CONNECTION) {
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      }
      if (role === HOP_BY_HOP || role === KEEP_ALIVE || role === TRANSFER_ENCODING) continue;
      if (role === CONTENT_LENGTH) length = Number(value);
      headers.push(name, value);
    }
    const nominated = nominatedFields(connection);
    if (nominated) headers = withoutNominated(headers, nominated);
    this.status = statusCode;
    this.headers = headers;
    const sized = Number.isFinite(length) && length <= BUFFERED_RESPONSE_BYTES;
    // An error answer of unknown length is held too, in case another target does better.
    this.hold =
      statusCode >= 500 && (sized || !Number.isFinite(length)) && this.policy.tryElsewhereOnError(this);
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
