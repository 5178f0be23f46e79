import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ControlPlaneServer } from "../src/local/control-plane/server.ts";
import type { StreamLimits } from "../src/local/control-plane/streams.ts";
import type { LocalStack } from "../src/local/runtime.ts";
import { createLocalStack } from "../src/local/topologies/index.ts";
import { loadStack } from "../src/stack/index.ts";
import { configPath, tempDir, waitFor } from "./helpers.ts";

const maxStreams = 3;
const maxBufferedBytes = 256 * 1024;
/** One event's padding: 8 KiB, so 6000 events are 48 MiB, far beyond every socket buffer. */
const padding = "x".repeat(8 * 1024);

/** A control plane in this process over a real (not started) stack, whose bus publishes. */
async function startControlPlane(streams: Partial<StreamLimits>) {
  const resolved = await loadStack(configPath, "dev", { topology: "single-instance" });
  const stack = createLocalStack({
    stack: resolved,
    stateDir: path.join(tempDir(), ".stayup"),
    listenerPort: 0,
    redisPort: 0,
    dnsPort: 0,
  });
  const control = new ControlPlaneServer(stack, () => undefined, { streams });
  await control.listen();
  return { stack, control };
}

/** A client on a raw socket that sends the request, reads the answer's head, then stops reading. */
async function openStalled(control: ControlPlaneServer, route: string) {
  const { host, port } = new URL(control.url);
  const socket = net.connect({ host: "127.0.0.1", port: Number(port) });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.on("error", () => undefined);
  socket.write(
    `GET ${route} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${control.access.token}\r\n\r\n`,
  );
  let rest = "";
  const head = await new Promise<string>((resolve) => {
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (!text.includes("\r\n\r\n")) return;
      socket.off("data", onData);
      // From here on nothing is read: the kernel's buffers fill, then the server's would.
      socket.pause();
      rest = text.slice(text.indexOf("\r\n\r\n") + 4);
      resolve(text.slice(0, text.indexOf("\r\n\r\n")));
    };
    socket.on("data", onData);
  });
  /** Reads again from here on; `received()` is everything the stream sent after its head so far. */
  const resume = () => {
    socket.on("data", (chunk: Buffer) => (rest += chunk.toString("latin1")));
    socket.resume();
  };
  return { socket, head, closed, resume, received: () => rest };
}

/**
 * A well-behaved reader of the dashboard's server-sent events: counts them by type; `has` resolves
 * once it got `count` of a type (woken by what it reads, no clock).
 */
async function readSse(control: ControlPlaneServer, since: number) {
  const res = await request(`${control.url}/dashboard/stream?since=${since}`, {
    headers: { authorization: `Bearer ${control.access.token}` },
  });
  assert.equal(res.statusCode, 200);
  const counts = new Map<string, number>();
  const waiters = new Set<() => void>();
  let text = "";
  const reading = (async () => {
    for await (const chunk of res.body) {
      text += String(chunk);
      const blocks = text.split("\n\n");
      text = blocks.pop() ?? "";
      for (const block of blocks) {
        const type = /^event: (.+)$/m.exec(block)?.[1];
        if (type) counts.set(type, (counts.get(type) ?? 0) + 1);
      }
      for (const w of waiters) w();
    }
  })().catch(() => undefined);
  const count = (type: string) => counts.get(type) ?? 0;
  const has = (type: string, n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (count(type) < n) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  const close = async () => {
    res.body.destroy();
    await reading;
  };
  return { count, has, close };
}

/** Publishes `count` events of `padding` each, in one go. */
function publishPadded(stack: LocalStack, from: number, count: number): number {
  for (let i = 0; i < count; i++) {
    stack.events.publish({
      type: "controller.error",
      controller: "test",
      error: `${from + i} ${padding}`,
      retry: "never",
    });
  }
  return from + count;
}

/**
 * The control plane's live streams (`/events`, the dashboard's server-sent events) on real sockets:
 * capped in number, and closed when their client stops reading instead of buffered without bound.
 * The control plane runs in this process over a real (not started) stack, whose bus publishes.
 */
describe("control plane streams: a cap and backpressure", { timeout: 180_000 }, () => {
  let stack: LocalStack;
  let control: ControlPlaneServer;

  before(async () => {
    // No drain deadline here (ten minutes): these streams are closed by the bound alone.
    ({ stack, control } = await startControlPlane({
      maxStreams,
      maxBufferedBytes,
      drainDeadlineMs: 600_000,
    }));
  });
  after(async () => {
    await control.close();
  });

  it("closes the streams of clients that do not read, holding at most its bound, while a reading client gets every event", async () => {
    const stalledEvents = await openStalled(control, "/events");
    const stalledDashboard = await openStalled(control, "/dashboard/stream");
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
    assert.equal(control.streams.closed["over-buffer-bound"], 2);
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

  it("holds back the dashboard's status for a client that does not read: only the latest, sent once it reads again", async () => {
    const since = stack.events.recent().at(-1)?.seq ?? 0;
    const stalled = await openStalled(control, `/dashboard/stream?since=${since}`);
    const reader = await readSse(control, since);
    try {
      await waitFor("two streams open", () => (control.streams.size === 2 ? true : undefined), 10_000);
      // Events one at a time until the stalled stream is backed up (the kernel's buffers are full),
      // each read by the reader first: its stream is never backed up when this looks.
      let published = since;
      const backedUp = () => control.streams.list().find((s) => s.backedUp);
      while (!backedUp()) {
        published = publishPadded(stack, published, 1);
        await reader.has("stack-event", published - since);
      }
      const held = backedUp();
      assert.ok(held);
      const heldBytes = held.res.writableLength;
      const statuses = reader.count("status");
      // Three ticks of the dashboard (one a second) reach the reader; the stalled stream holds no more.
      await reader.has("status", statuses + 3);
      assert.ok(held.open, "still open: backed up for less than its deadline, under its bound");
      assert.ok(held.heldBack.includes("status"), `held back: ${held.heldBack.join(", ")}`);
      // (the kernel may still take a little of what was held; nothing is added)
      assert.ok(
        held.res.writableLength <= heldBytes,
        `nothing more buffered for the stalled client: ${held.res.writableLength} > ${heldBytes}`,
      );
      // It reads again: it gets every event it was sent, then the status that was held back.
      stalled.resume();
      const lastEvent = `"error":"${published - 1} `;
      await waitFor(
        "the stalled client read a status after the last event",
        () => {
          const text = stalled.received();
          const at = text.indexOf(lastEvent);
          return at >= 0 && text.indexOf("event: status\n", at) > at ? true : undefined;
        },
        30_000,
      );
      assert.equal(held.heldBack.length, 0);
      const ids = [...stalled.received().matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
      assert.deepEqual(
        ids,
        Array.from({ length: published - since }, (_, i) => since + 1 + i),
        "every event, in order, none dropped",
      );
    } finally {
      stalled.socket.destroy();
      await reader.close();
    }
    await waitFor("both streams closed", () => (control.streams.size === 0 ? true : undefined), 10_000);
  });

  it(`answers 429 beyond ${maxStreams} streams, and admits one again once a stream closes`, async () => {
    const open = [];
    for (let i = 0; i < maxStreams; i++)
      open.push(await openStalled(control, i % 2 ? "/events" : "/dashboard/stream"));
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
    const again = await openStalled(control, "/events");
    assert.match(again.head, /^HTTP\/1\.1 200/);
    for (const s of [...open, again]) s.socket.destroy();
  });
});

describe("control plane streams: a deadline to drain", { timeout: 180_000 }, () => {
  let stack: LocalStack;
  let control: ControlPlaneServer;
  const drainDeadlineMs = 500;

  before(async () => {
    // A bound far above what these streams hold: only the deadline closes them.
    ({ stack, control } = await startControlPlane({
      maxStreams: 4,
      maxBufferedBytes: 64 * 1024 * 1024,
      drainDeadlineMs,
    }));
  });
  after(async () => {
    await control.close();
  });

  it(`closes a stream whose client has not read what it was sent for ${drainDeadlineMs} ms, well under its bound, while a reader goes on`, async () => {
    const since = stack.events.recent().at(-1)?.seq ?? 0;
    const stalled = [
      await openStalled(control, `/events?since=${since}`),
      await openStalled(control, `/dashboard/stream?since=${since}`),
    ];
    const reader = await readSse(control, since);
    await waitFor("three streams open", () => (control.streams.size === 3 ? true : undefined), 10_000);
    // Events one at a time, each read by the reader, until both stalled streams are backed up;
    // then nothing more is published: only the deadline can close them.
    let published = since;
    while (control.streams.list().filter((s) => s.backedUp).length < 2) {
      published = publishPadded(stack, published, 1);
      await reader.has("stack-event", published - since);
    }
    const held = Math.max(...control.streams.bufferedBytes());
    assert.ok(held < 1024 * 1024, `${held} bytes held when they backed up`);
    await waitFor(
      "the stalled streams closed",
      () => (control.streams.size === 1 ? true : undefined),
      60_000,
    );
    assert.equal(control.streams.closed["drain-deadline"], 2);
    assert.equal(control.streams.closed["over-buffer-bound"], 0);
    // The reader's stream is the one left, and it still gets the dashboard's ticks.
    const statuses = reader.count("status");
    await reader.has("status", statuses + 1);
    for (const s of stalled) s.resume();
    await Promise.all(stalled.map((s) => s.closed));
    await reader.close();
  });
});
