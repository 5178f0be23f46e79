import type http from "node:http";

/** What a control-plane route accepts of a request's body. */
export interface BodyLimits {
  /** Larger (declared by Content-Length, or as it arrives): 413, and nothing more is kept. */
  limitBytes: number;
  /** The whole body must have arrived by then (from the handler's start): else 408. */
  deadlineMs: number;
}

/** A body the CLI sends (a few short strings) arrives in milliseconds on loopback. */
export const defaultBodyDeadlineMs = 10_000;

export type BodyRead = { ok: true; text: string } | { ok: false; status: 400 | 408 | 413; error: string };

/**
 * The request's body as text, within `limits`: every control-plane route that reads a body reads
 * it here, so none buffers without bound or waits for ever on a client that trickles. Past the
 * size, what follows is drained and dropped, never kept; past the deadline, the request is given up.
 */
export function readBoundedBody(req: http.IncomingMessage, limits: BodyLimits): Promise<BodyRead> {
  return new Promise((resolve) => {
    let settled = false;
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (result: BodyRead) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      chunks.length = 0;
      req.removeListener("data", onData);
      if (!result.ok) req.resume(); // dropped as it comes; the answer closes the connection
      resolve(result);
    };
    const tooLarge = () =>
      settle({ ok: false, status: 413, error: `the body is larger than ${limits.limitBytes} bytes` });
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.limitBytes) return tooLarge();
      chunks.push(chunk);
    };
    const timer = setTimeout(
      () =>
        settle({
          ok: false,
          status: 408,
          error: `the body did not arrive within ${limits.deadlineMs} ms`,
        }),
      limits.deadlineMs,
    );
    timer.unref();
    if (Number(req.headers["content-length"] ?? 0) > limits.limitBytes) return tooLarge();
    req.on("data", onData);
    req.once("end", () => settle({ ok: true, text: Buffer.concat(chunks).toString("utf8") }));
    // A client that left mid-body: answered (to nobody) rather than thrown, so no route can crash.
    req.once("error", (error) =>
      settle({ ok: false, status: 400, error: `the request failed: ${error.message}` }),
    );
  });
}

/** Answers a body that was refused (413, 408, or 400 if it broke off) and closes the connection: the rest is not read. */
export function refuseBody(res: http.ServerResponse, refusal: Extract<BodyRead, { ok: false }>): void {
  res.writeHead(refusal.status, { "content-type": "application/json", connection: "close" });
  res.end(JSON.stringify({ error: refusal.error }));
}
