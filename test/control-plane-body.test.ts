import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ControlPlaneServer } from "../src/local/control-plane/server.ts";
import { rollBodyLimitBytes } from "../src/local/rolling-deploy/instance-settings.ts";
import { createLocalStack } from "../src/local/topologies/index.ts";
import { loadStack } from "../src/stack/index.ts";
import { configPath, tempDir } from "./helpers.ts";

const bodyDeadlineMs = 1000;

/**
 * A route that reads a body (`POST /roll`) reads it through one bounded reader (body.ts): too large
 * is 413 before it is kept, too slow is 408, and neither holds the connection. On real sockets,
 * against a control plane over a stack that is not started (nothing is rolled: every body here is
 * refused before it is parsed).
 */
describe("control plane bodies: a size cap and a deadline", { timeout: 120_000 }, () => {
  let control: ControlPlaneServer;
  let host = "";
  let port = 0;

  before(async () => {
    const stack = createLocalStack({
      stack: await loadStack(configPath, "dev", { topology: "single-instance" }),
      stateDir: path.join(tempDir(), ".stayup"),
      listenerPort: 0,
      redisPort: 0,
      dnsPort: 0,
    });
    control = new ControlPlaneServer(stack, () => undefined, { bodyDeadlineMs });
    await control.listen();
    host = new URL(control.url).host;
    port = Number(new URL(control.url).port);
  });
  after(async () => {
    await control.close();
  });

  /**
   * POST /roll on a raw socket with this head; `send` writes (part of) a body. Resolves with what
   * the server answered, once it closed the connection.
   */
  const post = async (headers: string, send: (socket: net.Socket) => void) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.on("error", () => undefined);
    let text = "";
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(
      `POST /roll HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${control.access.token}\r\n` +
        `Content-Type: application/json\r\n${headers}\r\n`,
    );
    send(socket);
    await closed;
    return text;
  };

  it("answers 413 to a body declared larger than the cap, before it is sent, and closes", async () => {
    const answer = await post(`Content-Length: ${10 * 1024 * 1024}\r\n`, () => undefined);
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /connection: close/i);
    assert.match(answer, new RegExp(`larger than ${rollBodyLimitBytes} bytes`));
  });

  it("answers 413 to a chunked body that grows past the cap, and closes", async () => {
    const answer = await post("Transfer-Encoding: chunked\r\n", (socket) => {
      const chunk = "x".repeat(16 * 1024);
      // Past the cap, and then some: the server answers once it is past, not at the end.
      for (let sent = 0; sent <= rollBodyLimitBytes * 2; sent += chunk.length)
        socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    });
    assert.match(answer, /^HTTP\/1\.1 413 /);
  });

  it(`answers 408 to a body that has not arrived within ${bodyDeadlineMs} ms, and closes`, async () => {
    // Ten bytes of a hundred, then nothing: the server gives up on its own deadline.
    const answer = await post("Content-Length: 100\r\n", (socket) => socket.write('{"settings"'));
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, new RegExp(`did not arrive within ${bodyDeadlineMs} ms`));
  });

  it("still answers everyone else: a bounded, well-formed body is read and judged", async () => {
    const res = await request(`${control.url}/roll`, {
      method: "POST",
      headers: { authorization: `Bearer ${control.access.token}`, "content-type": "application/json" },
      body: JSON.stringify({ settings: { NODE_OPTIONS: "--require ./x.cjs" } }),
    });
    assert.equal(res.statusCode, 400, "read in full, then refused for what it asks");
    await res.body.dump();
  });
});
