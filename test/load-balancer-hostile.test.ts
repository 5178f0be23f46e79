/**
 * Hostile clients against the load balancer, on real sockets: the balancer runs in a process of its
 * own (test/balancer-process.ts) so its resident memory can be read while they do their worst. For
 * each client that would make it hold resources (slow headers, slow body, a connection flood,
 * pipelining without reading, large bodies), the balancer's memory stays under a stated bound and a
 * well-behaved client, on its own keep-alive connection meanwhile, gets every answer. Short limits
 * are set through the settings (`loadBalancer.local.limits`) so that no test waits for the 60 s
 * defaults. The protocol checks (two Host fields, hop-by-hop fields) run the balancer in this
 * process, which starts quicker.
 */
import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";
import {
  LoadBalancer,
  type LoadBalancerOptions,
  type TrafficPolicy,
} from "../src/local/load-balancer/balancer.ts";
import { loadHttp1Parser } from "../src/local/load-balancer/http1-parser.ts";
import { type UpstreamHandler, UpstreamPool } from "../src/local/load-balancer/upstream-pool.ts";
import { LoadBalancerWorkers } from "../src/local/load-balancer/workers.ts";
import { TargetGroupController } from "../src/local/target-group/controller.ts";
import { findFreePort } from "../src/shared/net.ts";
import type { BalancerMemory, FromBalancerProcess, ToBalancerProcess } from "./balancer-process.ts";
import { alwaysRoutable, waitFor } from "./helpers.ts";

const MiB = 1024 * 1024;
const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

/** A target that records every request it receives; answers per path. */
async function startTarget() {
  const seen: string[] = [];
  const held: http.ServerResponse[] = [];
  const big = Buffer.alloc(200 * 1024, 97);
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on("end", () => {
      if (req.url === "/big") {
        res.writeHead(200, { "content-length": big.length });
        res.end(big);
      } else if (req.url === "/hold") {
        held.push(res);
      } else if (req.url === "/headers") {
        const body = JSON.stringify(req.rawHeaders);
        // Hop-by-hop fields on the answer: none may reach the client.
        res.writeHead(200, [
          "Connection",
          "keep-alive, X-Internal",
          "X-Internal",
          "internal-only",
          "Proxy-Authenticate",
          'Basic realm="target"',
          "Keep-Alive",
          "timeout=60",
          "Upgrade",
          "h2c",
          "X-Visible",
          "yes",
          "Content-Type",
          "application/json",
          "Content-Length",
          String(Buffer.byteLength(body)),
        ]);
        res.end(body);
      } else res.end("ok");
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cleanup.push(
    () => server.closeAllConnections(),
    () => new Promise((r) => server.close(r)),
  );
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    held,
    release: () => {
      for (const res of held.splice(0)) res.end("released");
    },
  };
}

const balancerEntry = fileURLToPath(new URL("./balancer-process.ts", import.meta.url));

/** The balancer in a process of its own, with these settings, in front of these targets. */
async function startBalancer(targetPorts: number[], options: Omit<LoadBalancerOptions, "host" | "port">) {
  const child: ChildProcess = fork(balancerEntry, [], {
    execArgv: ["--import", import.meta.resolve("tsx")],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  cleanup.push(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  const waiters: ((m: FromBalancerProcess) => void)[] = [];
  /** What the balancer published (its EventBus), in order. */
  const events: TimedStackEvent[] = [];
  child.on("message", (m: FromBalancerProcess) => {
    if (m.type === "event") events.push(m.event);
    else waiters.shift()?.(m);
  });
  const ask = (m: ToBalancerProcess) =>
    new Promise<FromBalancerProcess>((resolve, reject) => {
      waiters.push(resolve);
      child.send(m);
      child.once("exit", (code) => reject(new Error(`balancer process exited (${code})`)));
    });
  const listening = await ask({ type: "start", targetPorts, options });
  assert.equal(listening.type, "listening");
  const port = (listening as { port: number }).port;
  return {
    port,
    events,
    memory: async () => (await ask({ type: "memory" })) as BalancerMemory & { type: "memory" },
    /** Starts measuring the peak from now; answers the resident set now. */
    baseline: async () => {
      child.send({ type: "reset-peak" } satisfies ToBalancerProcess);
      return ((await ask({ type: "memory" })) as BalancerMemory).rssBytes;
    },
  };
}

/** The balancer in this process (for what needs no memory measurement: quicker to start). */
async function startBalancerHere(
  targetPorts: number | number[],
  options: Omit<LoadBalancerOptions, "host" | "port"> = {},
  policy?: TrafficPolicy,
): Promise<{ port: number }> {
  const source = alwaysRoutable([targetPorts].flat());
  const lb = new LoadBalancer(source, new EventBus(), { host: "127.0.0.1", port: 0, ...options }, policy);
  const url = await lb.listen();
  cleanup.push(() => lb.close());
  return { port: Number(new URL(url).port) };
}

/** A client that behaves: one keep-alive connection, opened before the hostile ones, a GET every 50 ms. */
async function wellBehavedClient(port: number) {
  const pool = new Pool(`http://127.0.0.1:${port}`, {
    connections: 1,
    keepAliveTimeout: 120_000,
    keepAliveMaxTimeout: 120_000,
  });
  const first = await pool.request({ path: "/small", method: "GET" });
  assert.equal(first.statusCode, 200);
  await first.body.text();
  const statuses: number[] = [];
  const errors: string[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const r = await pool.request({
          path: "/small",
          method: "GET",
          headersTimeout: 30_000,
          bodyTimeout: 30_000,
        });
        statuses.push(r.statusCode);
        await r.body.text();
      } catch (error) {
        errors.push(String(error));
      }
      await sleep(50);
    }
  })();
  return {
    /** Stops, and asserts it got an answer to every request, all 200. */
    async finish() {
      // It keeps going until it made a few requests while the hostile clients did their worst.
      await waitFor(
        "the well-behaved client served a few times",
        () => statuses.length + errors.length >= 3 || undefined,
        30_000,
      );
      stopped = true;
      await loop;
      await pool.close();
      assert.deepEqual(errors, [], "the well-behaved client's requests all got an answer");
      assert.ok(
        statuses.every((s) => s === 200),
        `the well-behaved client got 200 every time: ${statuses.filter((s) => s !== 200).join(",")}`,
      );
      return statuses.length;
    },
  };
}

/** A raw client socket that collects what it receives. */
function rawClient(port: number) {
  const socket = net.connect(port, "127.0.0.1");
  const state = { text: "", closed: false, connected: false };
  socket.on("connect", () => (state.connected = true));
  socket.on("data", (d: Buffer) => {
    // Only the start of the answers matters here (status lines); keep memory flat.
    if (state.text.length < 4096) state.text += d.toString("latin1");
  });
  socket.on("error", () => undefined);
  socket.on("close", () => (state.closed = true));
  cleanup.push(() => socket.destroy());
  return { socket, state };
}

/** Sends `raw` on a new connection and collects everything until the balancer closes it. */
function exchange(port: number, raw: string) {
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer; got: ${JSON.stringify(text)}`));
    }, 20_000);
    socket.on("data", (d) => (text += d.toString("latin1")));
    socket.on("end", () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on("error", reject);
    socket.write(raw);
  });
}

/**
 * Fails unless the balancer's resident set grew less than `boundBytes` above `baselineBytes`. The
 * peak RSS of the balancer's own process is what a user would see grow, and it includes what no
 * counter inside the balancer sees (sockets' kernel-side buffers copied in, V8 garbage not yet
 * collected). The bounds leave room for that: what the limits let the balancer hold in each test,
 * plus 16 MiB or more for garbage collection's timing, at least twice what a run measured, and
 * well under what the same client made the balancer hold before the limits.
 */
async function assertMemoryBound(
  balancer: Awaited<ReturnType<typeof startBalancer>>,
  baselineBytes: number,
  boundBytes: number,
  t: { diagnostic(message: string): void },
) {
  const m = await balancer.memory();
  const grewBytes = m.peakRssBytes - baselineBytes;
  t.diagnostic(
    `balancer RSS: baseline ${(baselineBytes / MiB).toFixed(1)} MiB, peak ${(m.peakRssBytes / MiB).toFixed(1)} MiB (+${(grewBytes / MiB).toFixed(1)} MiB; bound +${boundBytes / MiB} MiB)`,
  );
  assert.ok(
    grewBytes < boundBytes,
    `the balancer's memory grew ${(grewBytes / MiB).toFixed(1)} MiB, more than ${boundBytes / MiB} MiB`,
  );
}

describe("load balancer against hostile clients", { timeout: 180_000 }, () => {
  it("slow headers: each connection gets 408 at the request deadline and is closed", async (t) => {
    const target = await startTarget();
    const balancer = await startBalancer([target.port], { limits: { requestTimeoutMs: 2000 } });
    const good = await wellBehavedClient(balancer.port);
    const baseline = await balancer.baseline();
    // 200 clients, each sending one more header line every 500 ms and never the end of the head.
    const clients = Array.from({ length: 200 }, () => rawClient(balancer.port));
    for (const c of clients) c.socket.write("GET /small HTTP/1.1\r\nHost: x\r\n");
    let line = 0;
    const trickle = setInterval(() => {
      line++;
      for (const c of clients) if (!c.state.closed) c.socket.write(`X-Slow-${line}: ${line}\r\n`);
    }, 500);
    try {
      await waitFor(
        "every slow-header connection closed",
        () => clients.every((c) => c.state.closed),
        30_000,
      );
    } finally {
      clearInterval(trickle);
    }
    for (const c of clients) assert.match(c.state.text, /^HTTP\/1\.1 408 /);
    assert.ok(!target.seen.some((s) => s !== "GET /small"), "nothing but the good client's requests");
    // 200 heads of at most a few hundred bytes each: next to nothing; 32 MiB is GC's slack.
    await assertMemoryBound(balancer, baseline, 32 * MiB, t);
    await good.finish();
  });

  it("slow body (a byte every 500 ms): 408 at the request deadline, nothing reaches the target", async (t) => {
    const target = await startTarget();
    const balancer = await startBalancer([target.port], { limits: { requestTimeoutMs: 2000 } });
    const good = await wellBehavedClient(balancer.port);
    const before = target.seen.length;
    const baseline = await balancer.baseline();
    const clients = Array.from({ length: 100 }, () => rawClient(balancer.port));
    for (const c of clients)
      c.socket.write("POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    const trickle = setInterval(() => {
      for (const c of clients) if (!c.state.closed) c.socket.write("x");
    }, 500);
    try {
      await waitFor("every slow-body connection closed", () => clients.every((c) => c.state.closed), 30_000);
    } finally {
      clearInterval(trickle);
    }
    for (const c of clients) assert.match(c.state.text, /^HTTP\/1\.1 408 /);
    assert.ok(!target.seen.slice(before).includes("POST /slow-body"), "no slow body reached the target");
    // 100 bodies of a few bytes each so far: next to nothing; 32 MiB is GC's slack.
    await assertMemoryBound(balancer, baseline, 32 * MiB, t);
    await good.finish();
  });

  it("a connection flood above the cap: connections beyond it are closed at once; freed slots serve again", async (t) => {
    const target = await startTarget();
    const cap = 50;
    const balancer = await startBalancer([target.port], {
      limits: { maxClientConnections: cap, requestTimeoutMs: 60_000 },
    });
    const good = await wellBehavedClient(balancer.port);
    const baseline = await balancer.baseline();
    const flood = Array.from({ length: 400 }, () => rawClient(balancer.port));
    // Refused ones are closed as they are accepted; the ones within the cap stay open (idle).
    await waitFor(
      "the flood's connections beyond the cap closed",
      () => flood.filter((c) => !c.state.closed).length <= cap || undefined,
      30_000,
    );
    await sleep(1000);
    const open = flood.filter((c) => !c.state.closed).length;
    t.diagnostic(
      `${open} of ${flood.length} flood connections open (cap ${cap}, the good client's included)`,
    );
    assert.ok(open <= cap - 1, `at most the cap less the good client's connection stay open: ${open}`);
    assert.ok(open >= 1, "connections within the cap are accepted");
    // The refusals are told: an event at the first, then one per window with its count, so that
    // the events add up to every connection refused.
    const refusedTold = () =>
      balancer.events.reduce(
        (n, e) => (e.type === "load-balancer.connections-refused" ? n + e.refused : n),
        0,
      );
    const closed = flood.length - open;
    await waitFor(
      `events telling the ${closed} refused connections`,
      () => refusedTold() >= closed || undefined,
      30_000,
    );
    const told = balancer.events.filter((e) => e.type === "load-balancer.connections-refused");
    t.diagnostic(`${told.length} connections-refused events, ${refusedTold()} refusals told`);
    assert.equal(refusedTold(), closed, "each refused connection counted once");
    assert.ok(
      told.every((e) => e.listener === "http" && e.maxClientConnections === cap),
      "the events name the listener and its cap",
    );
    await assertMemoryBound(balancer, baseline, 32 * MiB, t);
    await good.finish();
    // The flood leaves: its slots serve new clients again.
    for (const c of flood) c.socket.destroy();
    const text = await waitFor(
      "a new connection served",
      async () => {
        // Refused (reset) until the balancer has seen the flood's connections close.
        const answer = await exchange(
          balancer.port,
          "GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ).catch(() => "");
        return /^HTTP\/1\.1 200 /.test(answer) ? answer : undefined;
      },
      20_000,
    );
    assert.match(text, /\r\n\r\nok$/);
  });

  it("pipelining without reading: the balancer stops reading that client instead of buffering its answers", async (t) => {
    const target = await startTarget();
    const balancer = await startBalancer([target.port], {});
    const good = await wellBehavedClient(balancer.port);
    const baseline = await balancer.baseline();
    const hostile = rawClient(balancer.port);
    hostile.socket.pause(); // never reads
    const requests = 400;
    hostile.socket.write("GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests));
    // Until the balancer stops forwarding the hostile client's requests (2 s without a new one).
    let last = -1;
    let stableSince = Date.now();
    await waitFor(
      "the balancer stopped forwarding the unread client's requests",
      () => {
        const served = target.seen.filter((s) => s === "GET /big").length;
        if (served !== last) {
          last = served;
          stableSince = Date.now();
        }
        return served === requests || Date.now() - stableSince > 2000 || undefined;
      },
      60_000,
    );
    // Held: at most maxQueuedResponseBytes (1 MiB) of answers unread in the socket, one answer
    // buffered (200 KiB), 16 request heads read ahead; the kernel holds the rest. The answers that
    // went through are garbage until collected: 40 MiB (measured +15; +96 before the limits).
    await assertMemoryBound(balancer, baseline, 40 * MiB, t);
    const served = target.seen.filter((s) => s === "GET /big").length;
    t.diagnostic(
      `${served} of ${requests} pipelined 200 KiB answers fetched for the client that does not read`,
    );
    assert.ok(
      served < requests / 2,
      `the balancer stopped fetching answers nobody reads (${served} of ${requests})`,
    );
    await good.finish();
    hostile.socket.destroy();
  });

  it("many large bodies at once: held within the shared budget, 503 beyond it", async (t) => {
    const target = await startTarget();
    const budget = 16 * MiB;
    const balancer = await startBalancer([target.port], {
      limits: { maxRequestBodyBytes: 10 * MiB, maxBufferedRequestBytesTotal: budget },
    });
    const good = await wellBehavedClient(balancer.port);
    const baseline = await balancer.baseline();
    // 20 clients each send all but the last byte of a 10 MiB body, and hold it.
    const body = Buffer.alloc(10 * MiB - 1, 98);
    const clients = Array.from({ length: 20 }, () => rawClient(balancer.port));
    for (const c of clients) {
      c.socket.write(`POST /large HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * MiB}\r\n\r\n`);
      c.socket.write(body);
      // A client told 503 closes (as a browser or client library does).
      c.socket.on("end", () => c.socket.destroy());
    }
    // Held: the 16 MiB budget, plus the chunks of refused bodies until collected and the copy of
    // the one body a request gets whole: 64 MiB (measured +17; +101 before the limits).
    const bound = 64 * MiB;
    const refused = () => clients.filter((c) => /^HTTP\/1\.1 503 /.test(c.state.text)).length;
    // Until all but one are refused, or (a balancer that holds them all) its memory is past the bound.
    await waitFor(
      "all but one large body refused with 503",
      async () =>
        refused() >= clients.length - 1 ||
        (await balancer.memory()).peakRssBytes - baseline > bound ||
        undefined,
      90_000,
    );
    await assertMemoryBound(balancer, baseline, bound, t);
    assert.ok(
      refused() >= clients.length - 1,
      `all but one large body refused: ${refused()} of ${clients.length}`,
    );
    assert.ok(!target.seen.includes("POST /large"), "no incomplete body reached the target");
    await good.finish();
  });

  it("a request queued behind the target's connection limit never reaches it once its client left, or once it expired", async () => {
    const target = await startTarget();
    const balancer = await startBalancer([target.port], {
      limits: { maxConnectionsPerTarget: 1, targetQueueTimeoutMs: 1500 },
    });
    // The target's one connection is busy with a request it holds.
    const holding = rawClient(balancer.port);
    holding.socket.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor("the target holds a request", () => target.held.length === 1 || undefined);
    // A POST waits for that connection; its client gives up and leaves.
    const leaving = rawClient(balancer.port);
    leaving.socket.write("POST /queued-abort HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    await sleep(300);
    leaving.socket.destroy();
    // Another waits past the queue timeout: 503, and it is never sent.
    const expiring = await exchange(
      balancer.port,
      "POST /queued-expire HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert.match(expiring, /^HTTP\/1\.1 503 /);
    // The connection comes free: the held request is answered, and the next request goes through.
    target.release();
    await waitFor(
      "the held request answered",
      () => /^HTTP\/1\.1 200 [\s\S]*released$/.test(holding.state.text) || undefined,
    );
    const next = await exchange(balancer.port, "GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match(next, /^HTTP\/1\.1 200 /);
    await sleep(500);
    assert.deepEqual(
      target.seen,
      ["GET /hold", "GET /small"],
      "the aborted and the expired POST never reached the target",
    );
  });

  it("a body declared larger than the limit: 413 before any of it is read (no 100 Continue), never forwarded", async () => {
    const target = await startTarget();
    const balancer = await startBalancerHere(target.port);
    const text = await exchange(
      balancer.port,
      `POST /too-large HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${10 * MiB + 1}\r\n\r\n`,
    );
    assert.match(text, /^HTTP\/1\.1 413 /, "the 413 comes first: the body is not invited");
    assert.match(text, /at most 10485760 bytes/);
    assert.ok(!target.seen.includes("POST /too-large"));
  });

  it("a GET queued behind a busy target whose per-try timeout passes leaves that queue: never sent there, served by the next", async () => {
    // Two targets, one connection each. POSTs (never retried) keep them busy: one each, and a third
    // queued behind one of them (Q); the other (F) is then the less busy, where the GET waits first.
    const targets = [await startTarget(), await startTarget()];
    const balancer = await startBalancerHere(
      targets.map((t) => t.port),
      { limits: { maxConnectionsPerTarget: 1 } },
      { retries: { maxAttempts: 3, perTryTimeoutMs: 300, budgetPercent: 100, minRetryConcurrency: 10 } },
    );
    const heldNow = () => targets.reduce((n, t) => n + t.held.length, 0);
    const holders = [rawClient(balancer.port), rawClient(balancer.port), rawClient(balancer.port)];
    for (const [i, h] of holders.entries()) {
      h.socket.write("POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
      if (i < 2) await waitFor(`target holds POST ${i + 1}`, () => heldNow() === i + 1 || undefined);
    }
    await sleep(200); // the third POST reaches a target's queue
    const client = rawClient(balancer.port);
    client.socket.write("GET /queued-per-try HTTP/1.1\r\nHost: x\r\n\r\n");
    // Its per-try timeout (300 ms) passes while it waits at F: it leaves F's queue for Q's.
    await sleep(3000);
    // Each target answers the POST it holds: Q takes its queued POST next (the GET still waits
    // behind it); F takes whatever is left in its queue, which must be nothing.
    for (const t of targets) t.release();
    await waitFor(
      "two held POSTs answered, the third held",
      () =>
        (holders.filter((h) => /released$/.test(h.state.text)).length === 2 && heldNow() === 1) || undefined,
    );
    await sleep(500);
    const sentTo = () => targets.map((t) => t.seen.filter((s) => s === "GET /queued-per-try").length);
    assert.deepEqual(sentTo(), [0, 0], "the GET was not sent from the queue it left");
    // Q answers its last POST: the GET goes there, once.
    for (const t of targets) t.release();
    await waitFor(
      "the GET answered",
      () => /^HTTP\/1\.1 200 [\s\S]*ok$/.test(client.state.text) || undefined,
    );
    await sleep(300);
    const q = targets.findIndex((t) => t.seen.filter((s) => s === "POST /hold").length === 2);
    const expected = [0, 0];
    expected[q] = 1;
    assert.deepEqual(sentTo(), expected, "sent once, by the target whose queue it moved to");
  });

  it("two Host header fields: 400, and the request is not forwarded", async () => {
    const target = await startTarget();
    const balancer = await startBalancerHere(target.port);
    const text = await exchange(
      balancer.port,
      "GET /two-hosts HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    );
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /more than one Host/);
    assert.ok(!target.seen.includes("GET /two-hosts"));
  });

  it("hop-by-hop header fields are not forwarded, either way (RFC 9110 §7.6.1)", async () => {
    const target = await startTarget();
    const balancer = await startBalancerHere(target.port);
    const text = await exchange(
      balancer.port,
      [
        "GET /headers HTTP/1.1",
        "Host: x",
        "Connection: close, X-Secret",
        "X-Secret: for-this-hop",
        "Keep-Alive: timeout=5",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "Proxy-Connection: keep-alive",
        "TE: trailers",
        "Upgrade: h2c",
        "X-Kept: yes",
        "",
        "",
      ].join("\r\n"),
    ).catch(() => "");
    // The answer's head, then the target's view of the request's header fields.
    const [head = "", body = "[]"] = text.split("\r\n\r\n");
    const received = (JSON.parse(body) as string[]).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const name of [
      "connection",
      "x-secret",
      "keep-alive",
      "proxy-authorization",
      "proxy-connection",
      "te",
      "upgrade",
    ])
      assert.ok(!received.includes(name), `${name} reached the target: ${received.join(", ")}`);
    assert.ok(received.includes("x-kept"), "an end-to-end field is forwarded");
    for (const name of ["x-internal", "proxy-authenticate", "keep-alive", "upgrade"])
      assert.doesNotMatch(head, new RegExp(`^${name}:`, "im"), `${name} reached the client`);
    assert.match(head, /^x-visible: yes$/im, "an end-to-end answer field is forwarded");
  });
});

describe("load balancer as worker processes against hostile clients", { timeout: 120_000 }, () => {
  it("each worker applies the limits, the totals shared out among them", async () => {
    const target = await startTarget();
    const events = new EventBus();
    const healthCheck = {
      path: "/health",
      intervalMs: 100,
      timeoutMs: 80,
      healthyThreshold: 2,
      unhealthyThreshold: 2,
    };
    const tg = new TargetGroupController(healthCheck, events, 0);
    const cap = 20;
    // A port of its own: node:cluster shares one listening handle per address, port 0 included.
    const lb = new LoadBalancerWorkers(
      tg,
      events,
      {
        host: "127.0.0.1",
        port: await findFreePort(),
        limits: { requestTimeoutMs: 2000, maxClientConnections: cap },
      },
      {},
      2,
    );
    const url = await lb.listen();
    cleanup.push(
      () => lb.close(),
      () => lb.stop(),
      () => tg.stop(),
    );
    tg.register({ instanceId: "i-a", az: "z-a", host: "127.0.0.1", port: target.port });
    await waitFor("target healthy", () => tg.inRotation().length === 1 || undefined, 10_000);
    const port = Number(new URL(url).port);

    // A slow client gets 408 at the request deadline, from whichever worker accepted it.
    const slow = Array.from({ length: 10 }, () => rawClient(port));
    for (const c of slow) c.socket.write("GET /small HTTP/1.1\r\nHost: x\r\n");
    await waitFor("every slow client closed", () => slow.every((c) => c.state.closed) || undefined, 30_000);
    for (const c of slow) assert.match(c.state.text, /^HTTP\/1\.1 408 /);

    // A flood: each worker takes its share of the cap (10), so at most the cap stays open in all.
    const flood = Array.from({ length: 200 }, () => rawClient(port));
    await waitFor(
      "the flood's connections beyond the cap closed",
      () => flood.filter((c) => !c.state.closed).length <= cap || undefined,
      30_000,
    );
    assert.ok(
      flood.some((c) => c.state.connected),
      "connections within the cap are accepted",
    );
    // Each worker tells its refusals; the runtime's bus hears them.
    await waitFor(
      "a worker's connections-refused event",
      () => events.recent().find((e) => e.type === "load-balancer.connections-refused"),
      10_000,
    );
    for (const c of flood) c.socket.destroy();
  });
});

describe("requests queued behind a target's connection limit", () => {
  it("one aborted while it waits (as the per-try timeout aborts a try) leaves the queue and is never sent", async () => {
    const target = await startTarget();
    const http1 = loadHttp1Parser();
    assert.ok(http1);
    const pool = new UpstreamPool(
      "127.0.0.1",
      target.port,
      {
        maxConnections: 1,
        queueTimeoutMs: 60_000,
        idleTimeoutMs: 30_000,
        connectTimeoutMs: 1000,
        headersTimeoutMs: 60_000,
        bodyTimeoutMs: 60_000,
      },
      http1,
    );
    cleanup.push(() => pool.destroy());
    /** A try's handler: how it ended, and its abort (what ForwardTry calls on its per-try timeout). */
    const handler = () => {
      const h: { abort?: (error: Error) => void; ended?: string; callbacks: UpstreamHandler } = {
        callbacks: {
          onConnect: (abort) => (h.abort = abort),
          onHeaders: () => true,
          onData: () => true,
          onComplete: () => (h.ended = "complete"),
          onError: (error) => (h.ended = `error: ${error.message}`),
        },
      };
      return h;
    };
    const request = (path: string) => ({ method: "GET", path, headers: ["host", "x"], body: null });
    const first = handler();
    pool.dispatch(request("/hold"), first.callbacks);
    await waitFor("the target holds the first request", () => target.held.length === 1 || undefined);
    const queued = handler();
    pool.dispatch(request("/queued-per-try"), queued.callbacks);
    assert.ok(queued.abort, "a queued request can be aborted");
    queued.abort(new Error("no answer headers within the per-try timeout"));
    assert.equal(queued.ended, "error: no answer headers within the per-try timeout");
    const after = handler();
    pool.dispatch(request("/after"), after.callbacks);
    target.release();
    await waitFor("the request queued after it served", () => after.ended);
    assert.equal(first.ended, "complete");
    assert.equal(after.ended, "complete");
    assert.deepEqual(
      target.seen,
      ["GET /hold", "GET /after"],
      "the aborted request never reached the target",
    );
  });
});
