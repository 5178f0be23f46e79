/**
 * HTTP/1.1 parsing for the balancer's data plane with llhttp, the parser `node:http` itself runs,
 * through its binding in `_http_common` (Node's own HTTP server and client are built on it). Used
 * directly, it costs no per-request streams or objects: `node:http` answering a request costs
 * about 40 µs of CPU on the benchmark machine, most of it `IncomingMessage`/`ServerResponse`
 * machinery, which is as much as nginx spends to proxy one (docs/benchmarks.md).
 *
 * The binding is not a documented API: `loadHttp1Parser()` checks its shape and answers undefined
 * when it does not match, and the balancer then serves through `node:http` and undici.
 */
import { createRequire } from "node:module";
import type { Socket } from "node:net";

/** One llhttp instance, as Node's binding exposes it. */
export interface Http1Parser {
  initialize(kind: number, asyncResource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or the parse error (its `code`: HPE_*). */
  execute(data: Buffer): number | (Error & { code?: string; reason?: string });
  /** The end of the input: completes a message delimited by the connection's close. */
  finish(): undefined | (Error & { code?: string });
  close(): void;
  /**
   * Reads `handle` (a socket's stream handle) in C++ from now on: its bytes go straight to llhttp,
   * and JS runs only for the callbacks, `kOnExecute` once per read (as `node:http` reads requests).
   * Must be undone (`unconsume`) before `close`, which frees the parser the stream still points to.
   */
  consume(handle: object): void;
  unconsume(): void;
  [callback: number]: unknown;
}

export interface Http1ParserBinding {
  HTTPParser: {
    new (): Http1Parser;
    prototype: Partial<Http1Parser>;
    REQUEST: number;
    RESPONSE: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    /** Called after each read of a consumed stream with what `execute` returned. */
    kOnExecute: number;
    kLenientNone: number;
  };
  methods: string[];
}

/**
 * `kOnHeadersComplete`'s arguments. `headers` (flat name/value list) and `url` are undefined when
 * they arrived in several reads and were delivered through `kOnHeaders` first. Its return value:
 * 1 means the message has no body (the answer to a HEAD request, or an interim 1xx).
 */
export type HeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number | undefined,
  statusMessage: string | undefined,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number;

let binding: Http1ParserBinding | undefined | null = null;

/** Node's llhttp binding, or undefined where this Node.js does not offer it in the expected shape. */
export function loadHttp1Parser(): Http1ParserBinding | undefined {
  if (binding !== null) return binding;
  binding = undefined;
  try {
    const candidate = createRequire(import.meta.url)("_http_common") as Partial<Http1ParserBinding>;
    const P = candidate.HTTPParser;
    if (
      typeof P === "function" &&
      Array.isArray(candidate.methods) &&
      [
        P.REQUEST,
        P.RESPONSE,
        P.kOnHeaders,
        P.kOnHeadersComplete,
        P.kOnBody,
        P.kOnMessageComplete,
        P.kOnExecute,
      ].every((n) => typeof n === "number") &&
      typeof P.prototype.consume === "function" &&
      typeof P.prototype.unconsume === "function" &&
      selfTest(candidate as Http1ParserBinding)
    ) {
      binding = candidate as Http1ParserBinding;
    }
  } catch {
    binding = undefined;
  }
  return binding;
}

/** Parses one known request: the binding behaves as this module expects, or is not used. */
function selfTest(b: Http1ParserBinding): boolean {
  const P = b.HTTPParser;
  const parser = new P();
  let seen = "";
  parser.initialize(P.REQUEST, {}, 0, P.kLenientNone ?? 0);
  parser[P.kOnHeaders | 0] = () => undefined;
  parser[P.kOnHeadersComplete | 0] = ((_a, _b, headers, method, url) => {
    seen = `${b.methods[method ?? -1]} ${url} ${headers?.join(",")}`;
    return 0;
  }) satisfies HeadersComplete;
  parser[P.kOnBody | 0] = (chunk: Buffer) => (seen += ` ${chunk.toString("latin1")}`);
  parser[P.kOnMessageComplete | 0] = () => (seen += " done");
  const parsed = parser.execute(Buffer.from("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"));
  parser.close();
  return parsed === 50 && seen === "POST /x Host,a,Content-Length,2 hi done";
}

/** A socket's libuv stream handle, as `consume` takes it and `node:http` pauses a consumed one. */
interface StreamHandle {
  isStreamBase?: boolean;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

/**
 * Makes `parser` read `socket` directly (see `Http1Parser.consume`); false when the socket has no
 * stream handle of its own (it is wrapped, as a TLS socket is), and it must be fed from `data`.
 */
export function consumeSocket(parser: Http1Parser, socket: Socket): boolean {
  const handle = streamHandle(socket);
  if (!handle?.isStreamBase) return false;
  parser.consume(handle);
  return true;
}

const streamHandle = (socket: Socket) => (socket as unknown as { _handle?: StreamHandle | null })._handle;

/**
 * Stops or restarts reading a socket whose parser consumes it: `pause()` would not, since its
 * bytes never reach the stream (node:http's `onSocketPause`/`onSocketResume` do the same).
 */
export function setReading(socket: Socket, reading: boolean): void {
  const handle = streamHandle(socket);
  if (!handle || handle.reading === reading) return;
  handle.reading = reading;
  if (reading) handle.readStart();
  else handle.readStop();
}
