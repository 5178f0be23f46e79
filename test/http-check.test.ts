import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { findFreePort } from "../src/shared/net.ts";
import { httpCheck } from "../src/shared/http-check.ts";

/**
 * The runtime's health checks and failover probe over node:http (src/shared/http-check.ts, in place
 * of undici to keep it out of the runtime's memory): status, a fresh connection each time, and the
 * failure codes the checks tell a timeout by (they end in _TIMEOUT, as undici's did).
 */
describe("httpCheck", { timeout: 30_000 }, () => {
  const seen: { method?: string; connection?: string; agent?: string; body: string }[] = [];
  const sockets = new Set<unknown>();
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({
        method: req.method,
        connection: req.headers.connection,
        agent: req.headers["user-agent"],
        body,
      });
      if (req.url === "/ok") res.end("fine");
      else if (req.url === "/503") {
        res.statusCode = 503;
        res.end("no");
      } else if (req.url === "/endless-body") {
        // A piece every 20 ms, forever: each piece arrives in time, the body never ends.
        const timer = setInterval(() => res.write("more "), 20);
        res.on("close", () => clearInterval(timer));
      } else if (req.url === "/slow-body") {
        res.write("part");
        // the rest never comes
      }
      // "/silent": never answers
    });
  });
  server.on("connection", (s) => sockets.add(s));
  let base = "";
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it("answers the status, on a fresh connection each time, with the headers and body given", async () => {
    assert.equal((await httpCheck(`${base}/ok`, { timeoutMs: 2000 })).statusCode, 200);
    assert.equal(
      (
        await httpCheck(`${base}/503`, {
          timeoutMs: 2000,
          method: "POST",
          headers: { "user-agent": "probe" },
          body: "{}",
        })
      ).statusCode,
      503,
    );
    assert.equal(seen[0]?.connection, "close");
    assert.deepEqual(seen[1], { method: "POST", connection: "close", agent: "probe", body: "{}" });
    assert.equal(sockets.size, 2, "one connection per check");
  });

  it("fails with UND_ERR_HEADERS_TIMEOUT when no answer comes in time", async () => {
    await assert.rejects(httpCheck(`${base}/silent`, { timeoutMs: 200 }), {
      code: "UND_ERR_HEADERS_TIMEOUT",
    });
  });

  it("fails with UND_ERR_BODY_TIMEOUT when the body stops", async () => {
    await assert.rejects(httpCheck(`${base}/slow-body`, { timeoutMs: 200 }), {
      code: "UND_ERR_BODY_TIMEOUT",
    });
  });

  it("fails with UND_ERR_BODY_TIMEOUT when the body never ends, though each piece comes in time", async () => {
    await assert.rejects(httpCheck(`${base}/endless-body`, { timeoutMs: 200 }), {
      code: "UND_ERR_BODY_TIMEOUT",
    });
  });

  it("fails with the socket's code when nothing listens", async () => {
    const port = await findFreePort();
    await assert.rejects(httpCheck(`http://127.0.0.1:${port}/`, { timeoutMs: 1000 }), {
      code: "ECONNREFUSED",
    });
  });
});
