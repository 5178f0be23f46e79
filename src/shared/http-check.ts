import http from "node:http";

/**
 * One HTTP request on a fresh connection, its body read and dropped: what the runtime's health
 * checks, failover probe and webhook deliveries need, over node:http. undici, which they used,
 * keeps its whole client (fetch, WebSocket, its mocks, two WebAssembly parsers) in the runtime's
 * heap for the stack's life, about 10 MiB of a process that is otherwise timers and small requests
 * (issue 25, item 12; docs/benchmarks.md). Failures carry the codes undici gave them, so a health
 * check's reason reads as before: the socket's own (ECONNREFUSED, ECONNRESET...), and
 * UND_ERR_CONNECT_TIMEOUT, UND_ERR_HEADERS_TIMEOUT or UND_ERR_BODY_TIMEOUT when the connection,
 * the answer's headers (from the start) or the next piece of its body does not come within
 * `timeoutMs`.
 */
export async function httpCheck(
  url: string,
  options: {
    timeoutMs: number;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
  },
): Promise<{ statusCode: number }> {
  // node:https (and TLS) only for an https URL: a webhook may be one, the local checks never are.
  const client = url.startsWith("https:") ? await import("node:https") : http;
  return new Promise((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const fail = (code: string, message: string) => {
      done(Object.assign(new Error(message), { code }));
      req.destroy();
    };
    const arm = (code: string, message: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(code, message), options.timeoutMs);
    };
    const done = (error?: Error, statusCode?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve({ statusCode: statusCode as number });
    };
    // A fresh connection each time (no keep-alive agent), like an ALB's or Route 53's checker.
    const req = client.request(url, {
      method: options.method ?? "GET",
      headers: { connection: "close", ...options.headers },
      agent: false,
    });
    arm("UND_ERR_CONNECT_TIMEOUT", "Connect Timeout Error");
    req.once("socket", (socket) => {
      socket.once("connect", () => arm("UND_ERR_HEADERS_TIMEOUT", "Headers Timeout Error"));
    });
    req.once("response", (res) => {
      // The whole body within timeoutMs of the headers, not each piece: a service that streams
      // forever would otherwise hold its check open, and the next check never starts.
      arm("UND_ERR_BODY_TIMEOUT", "Body Timeout Error");
      res.resume();
      res.once("end", () => done(undefined, res.statusCode ?? 0));
      res.once("error", (error) => done(error));
      res.once("aborted", () =>
        done(Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" })),
      );
    });
    req.once("error", (error) => done(error));
    req.end(options.body);
  });
}
