/**
 * The balancer's HTTP/1.1 on the wire (src/local/load-balancer/http1-listener.ts and
 * upstream-pool.ts): raw client sockets on loopback against real `node:http` and raw targets,
 * for what a client library would hide (pipelining, HTTP/1.0, framing, malformed requests).
 */
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { EventBus } from "../src/local/events/bus.ts";
import { LoadBalancer } from "../src/local/load-balancer/balancer.ts";
import { alwaysRoutable, waitFor } from "./helpers.ts";

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

async function listening<T extends net.Server>(server: T): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cleanup.push(() => new Promise((r) => server.close(r)));
  return (server.address() as AddressInfo).port;
}

/** A balancer in front of one target at `port` (always routable: no health checks here). */
async function balancerFor(port: number, maxBodyBytes?: number): Promise<{ port: number; lb: LoadBalancer }> {
  const lb = new LoadBalancer(alwaysRoutable([port]), new EventBus(), {
    host: "127.0.0.1",
    port: 0,
    limits: maxBodyBytes === undefined ? {} : { maxRequestBodyBytes: maxBodyBytes },
  });
  const url = await lb.listen();
  cleanup.push(() => lb.close());
  return { port: Number(new URL(url).port), lb };
}

/** Sends `raw` on a new connection and collects everything until the balancer closes it (or `untilBytes`). */
function exchange(
  port: number,
  raw: string | Buffer,
  opts: { untilIncludes?: string; halfClose?: boolean } = {},
) {
  return new Promise<{ text: string; closedByServer: boolean }>((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer; got: ${JSON.stringify(text)}`));
    }, 10_000);
    socket.on("data", (d) => {
      text += d.toString("latin1");
      if (opts.untilIncludes && text.includes(opts.untilIncludes)) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ text, closedByServer: false });
      }
    });
    socket.on("end", () => {
      clearTimeout(timer);
      resolve({ text, closedByServer: true });
    });
    socket.on("error", reject);
    socket.write(raw);
    if (opts.halfClose) socket.end();
  });
}

/** A `node:http` target that echoes method, path and body, and answers per path. */
async function echoTarget(): Promise<number> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      if (req.url === "/chunked") {
        // No length: node:http frames it chunked.
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("first-");
        setTimeout(() => res.end("second"), 20);
        return;
      }
      const text = `${req.method} ${req.url} cl=${req.headers["content-length"] ?? "-"} te=${req.headers["transfer-encoding"] ?? "-"} body=${body}`;
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  });
  return listening(server);
}

describe("load balancer on the wire (HTTP/1.1)", () => {
  it("answers pipelined requests in order on one connection", async () => {
    const { port } = await balancerFor(await echoTarget());
    const { text } = await exchange(
      port,
      "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    const order = [...text.matchAll(/GET (\/\w+)/g)].map((m) => m[1]);
    assert.deepEqual(order, ["/one", "/two", "/three"]);
    assert.equal(text.match(/HTTP\/1\.1 200 OK/g)?.length, 3);
    assert.match(text, /connection: close/i, "the last answer says the connection closes");
  });

  it("a client that ends its side right after its request still gets the answer", async () => {
    const { port } = await balancerFor(await echoTarget());
    const { text, closedByServer } = await exchange(port, "GET /half HTTP/1.1\r\nHost: x\r\n\r\n", {
      halfClose: true,
    });
    assert.match(text, /GET \/half/);
    assert.ok(closedByServer);
  });

  it("a request pipelined after one that asked to close is not handled", async () => {
    const { port } = await balancerFor(await echoTarget());
    const { text, closedByServer } = await exchange(
      port,
      "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert.match(text, /GET \/last/);
    assert.doesNotMatch(text, /ignored/);
    assert.ok(closedByServer);
  });

  it("an HTTP/1.0 client without keep-alive gets its answer and the connection closes", async () => {
    const { port } = await balancerFor(await echoTarget());
    const { text, closedByServer } = await exchange(port, "GET /old HTTP/1.0\r\n\r\n");
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /GET \/old/);
    assert.ok(closedByServer);
  });

  it("forwards a chunked request body to the target with its length", async () => {
    const { port } = await balancerFor(await echoTarget());
    const { text } = await exchange(
      port,
      "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert.match(text, /POST \/p cl=11 te=- body=hello world/);
  });

  it("streams a target's chunked answer to the client as chunked, whole", async () => {
    const { port } = await balancerFor(await echoTarget());
    const { text } = await exchange(port, "GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const [head, body] = text.split("\r\n\r\n", 2) as [string, string];
    assert.match(head, /transfer-encoding: chunked/i);
    const decoded = text
      .slice(head.length + 4)
      .split("\r\n")
      .filter((_, i) => i % 2 === 1)
      .join("");
    assert.equal(decoded, "first-second");
    assert.ok(body.endsWith("0"), "the last chunk ends the answer");
  });

  it("a HEAD answer has the target's headers and no body", async () => {
    const { port } = await balancerFor(await echoTarget());
    const { text } = await exchange(
      port,
      "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    const answers = text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, text);
    assert.match(
      answers[0] as string,
      /content-length: \d+\r\n/i,
      "HEAD: the target's length of the body it did not send",
    );
    assert.ok((answers[0] as string).endsWith("\r\n\r\n"), "HEAD: headers only");
    assert.match(answers[1] as string, /GET \/after/, "the next answer on the connection is intact");
  });

  it("a target that answers until it closes the connection (no length) is forwarded whole", async () => {
    const raw = net.createServer((socket) =>
      socket.once("data", () =>
        socket.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close body"),
      ),
    );
    const { port } = await balancerFor(await listening(raw));
    const { text } = await exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.ok(text.includes("until-close body"), text);
  });

  it("a target that closes its keep-alive connections after each answer still serves every request", async () => {
    let connections = 0;
    const raw = net.createServer((socket) => {
      connections++;
      socket.once("data", () =>
        socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
      );
    });
    const { port } = await balancerFor(await listening(raw));
    for (let i = 0; i < 3; i++) {
      const { text } = await exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      assert.match(text, /\r\n\r\nok$/);
    }
    assert.equal(connections, 3, "a connection the target closed is not reused");
  });

  it("closes an idle target connection before the target's own keep-alive timeout", async () => {
    let closedByBalancer = false;
    // Says it keeps idle connections 2 s, and never closes one itself.
    const raw = net.createServer((socket) => {
      socket.on("data", () =>
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=2\r\n\r\nok"),
      );
      socket.on("end", () => {
        closedByBalancer = true;
        socket.end();
      });
    });
    const { port } = await balancerFor(await listening(raw));
    const { text } = await exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match(text, /\r\n\r\nok$/);
    await waitFor("the balancer closed the idle connection", () => closedByBalancer || undefined, 10_000);
  });

  it("refuses a request with both Content-Length and Transfer-Encoding (smuggling) with 400 and closes", async () => {
    const targetPort = await echoTarget();
    const { port } = await balancerFor(targetPort);
    const { text, closedByServer } = await exchange(
      port,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert.match(text, /^HTTP\/1\.1 400 Bad Request/);
    assert.doesNotMatch(text, /smuggled/);
    assert.ok(closedByServer);
  });

  it("answers 413 to a body above the limit, and 100 Continue before a body that is expected", async () => {
    const { port } = await balancerFor(await echoTarget(), 8);
    const big = await exchange(
      port,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n01234567890123456789",
    );
    assert.match(big.text, /^HTTP\/1\.1 413 /);
    const continued = await exchange(
      port,
      "POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
      {
        untilIncludes: "100 Continue",
      },
    );
    assert.match(continued.text, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
  });

  it("answers 501 to an upgrade (WebSocket is not proxied) and 400 to garbage", async () => {
    const { port } = await balancerFor(await echoTarget());
    const upgrade = await exchange(
      port,
      "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert.match(upgrade.text, /^HTTP\/1\.1 501 /);
    const garbage = await exchange(port, "NOT HTTP AT ALL\r\n\r\n");
    assert.match(garbage.text, /^HTTP\/1\.1 400 /);
    assert.ok(garbage.closedByServer);
  });
});
