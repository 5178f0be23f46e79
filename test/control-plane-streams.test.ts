import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ControlPlaneServer } from "../src/local/control-plane/server.ts";
import type { LocalStack } from "../src/local/runtime.ts";
import { createLocalStack } from "../src/local/topologies/index.ts";
import { loadStack } from "../src/stack/index.ts";
import { configPath, tempDir, waitFor } from "./helpers.ts";

const maxStreams = 3;
const maxBufferedBytes = 256 * 1024;
/** One event's padding: 8 KiB, so 6000 events are 48 MiB, far beyond every socket buffer. */
const padding = "x".repeat(8 * 1024);

/**
 * The control plane's live streams (`/events`, the dashboard's server-sent events) on real sockets:
 * capped in number, and closed when their client stops reading instead of buffered without bound.
 * The control plane runs in this process over a real (not started) stack, whose bus publishes.
 */
describe("control plane streams: a cap and backpressure", { timeout: 180_000 }, () => {
  let stack: LocalStack;
  let control: ControlPlaneServer;
  let host = "";
  let port = 0;

  before(async () => {
    const resolved = await loadStack(configPath, "dev", { topology: "single-instance" });
    stack = createLocalStack({
      stack: resolved,
      stateDir: path.join(tempDir(), ".stayup"),
      listenerPort: 0,
      redisPort: 0,
      dnsPort: 0,
    });
    control = new ControlPlaneServer(stack, () => undefined, { streams: { maxStreams, maxBufferedBytes } });
    await control.listen();
    host = new URL(control.url).host;
    port = Number(new URL(control.url).port);
  });
  after(async () => {
    await control.close();
  });

  /** A client on a raw socket that sends the request, reads the answer's head, then stops reading. */
  const openStalled = async (route: string) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => undefined);
    socket.write(
      `GET ${route} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${control.access.token}\r\n\r\n`,
    );
    const head = await new Promise<string>((resolve) => {
      let text = "";
      const onData = (chunk: Buffer) => {
        text += chunk.toString("latin1");
        if (!text.includes("\r\n\r\n")) return;
        socket.off("data", onData);
        // From here on nothing is read: the kernel's buffers fill, then the server's would.
        socket.pause();
        resolve(text.slice(0, text.indexOf("\r\n\r\n")));
      };
      socket.on("data", onData);
    });
    return { socket, head, closed };
  };

  it("closes the streams of clients that do not read, holding at most its bound, while a reading client gets every event", async () => {
    const stalledEvents = await openStalled("/events");
    const stalledDashboard = await openStalled("/dashboard/stream");
    assert.match(stalledEvents.head, /^HTTP\/1\.1 200/);
    assert.match(stalledDashboard.head, /^HTTP\/1\.1 200/);
    // A well-behaved reader on /events meanwhile.
    const since = stack.events.recent().at(-1)?.seq ?? 0;
    const reader = await request(`${control.url}/events?since=${since}`, {
      headers: { authorization: `Bearer ${control.access.token}` },
    });
    assert.equal(reader.statusCode, 200);
    let received = "";
    let receivedCount = 0;
    let onReceived = () => undefined as void;
    /** Resolves once the reader has `count` events (woken by the reader, no clock). */
    const readerHas = (count: number) =>
      new Promise<void>((resolve) => {
        onReceived = () => {
          if (receivedCount >= count) resolve();
        };
        onReceived();
      });
    const reading = (async () => {
      for await (const chunk of reader.body) {
        received += String(chunk);
        const lines = received.split("\n");
        received = lines.pop() ?? "";
        receivedCount += lines.filter((l) => l.trim()).length;
        onReceived();
      }
    })().catch(() => undefined);
    await waitFor("three streams open", () => (control.streams.size === 3 ? true : undefined), 10_000);

    let published = 0;
    let maxHeld = 0;
    const total = 6000;
    while (published < total) {
      for (let i = 0; i < 16; i++) {
        stack.events.publish({
          type: "controller.error",
          controller: "test",
          error: `${published++} ${padding}`,
          retry: "never",
        });
      }
      maxHeld = Math.max(maxHeld, ...control.streams.bufferedBytes());
      // Each batch waits for the reader (not a clock): a reading client never falls behind.
      await readerHas(published);
    }
    // The bound, plus the last event written, plus what the streams opened with (an empty
    // history here, the dashboard's first status: a few KiB).
    const slackBytes = Buffer.byteLength(JSON.stringify(stack.events.recent().at(-1))) + 16 * 1024;
    assert.ok(
      maxHeld <= maxBufferedBytes + slackBytes,
      `a stream held at most ${maxHeld} bytes (bound ${maxBufferedBytes} + one event)`,
    );
    assert.ok(maxHeld > 0, "the stalled streams did fill up before being closed");
    // Both stalled streams were closed by the server (their clients see the end once they read
    // what the kernel holds); the reader's is still open.
    assert.equal(control.streams.size, 1, "only the reading stream is left");
    for (const stalled of [stalledEvents, stalledDashboard]) stalled.socket.resume();
    await Promise.all([stalledEvents.closed, stalledDashboard.closed]);
    assert.equal(receivedCount, total, "the reading client got every event");
    reader.body.destroy();
    await reading;
    await waitFor(
      "the reader's stream closed",
      () => (control.streams.size === 0 ? true : undefined),
      10_000,
    );
  });

  it(`answers 429 beyond ${maxStreams} streams, and admits one again once a stream closes`, async () => {
    const open = [];
    for (let i = 0; i < maxStreams; i++)
      open.push(await openStalled(i % 2 ? "/events" : "/dashboard/stream"));
    for (const s of open) assert.match(s.head, /^HTTP\/1\.1 200/);
    for (const route of ["/events", "/dashboard/stream"]) {
      const res = await request(`${control.url}${route}`, {
        headers: { authorization: `Bearer ${control.access.token}` },
      });
      assert.equal(res.statusCode, 429, route);
      assert.match(((await res.body.json()) as { reason: string }).reason, /3 streams are open/);
    }
    // Other routes are not streams: still answered.
    const status = await request(`${control.url}/status`, {
      headers: { authorization: `Bearer ${control.access.token}` },
    });
    assert.equal(status.statusCode, 200);
    await status.body.dump();
    open[0]?.socket.destroy();
    await waitFor(
      "a stream closed",
      () => (control.streams.size === maxStreams - 1 ? true : undefined),
      10_000,
    );
    const again = await openStalled("/events");
    assert.match(again.head, /^HTTP\/1\.1 200/);
    for (const s of [...open, again]) s.socket.destroy();
  });
});
