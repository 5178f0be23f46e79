import assert from "node:assert/strict";
import net from "node:net";
import { createServer, type Server } from "node:http";
import { initialHealth, nextHealth } from "../src/local/single-instance/health-check.ts";
import { after, before, describe, it } from "node:test";
import { Pool, request } from "undici";
import { EventBus } from "../src/local/events/bus.ts";
import {
  DataVolume,
  decideAttach,
  decideDetach,
  VolumeInUseError,
} from "../src/local/single-instance/data-volume.ts";
import type { ObservedAnswer } from "../src/local/single-instance/exchange-tap.ts";
import { abortClient, StableAddress } from "../src/local/single-instance/stable-address.ts";
import { tempDir, waitFor } from "./helpers.ts";

const alive = (pids: number[]) => (pid: number) => pids.includes(pid);

describe("data volume: attach and detach rules (pure)", () => {
  it("an available volume attaches", () => {
    assert.deepEqual(decideAttach(undefined, "i-new", alive([])), { action: "attach" });
  });
  it("a volume held by a live instance is refused to another: never two at once", () => {
    const holder = { instanceId: "i-old", pid: 10 };
    assert.deepEqual(decideAttach(holder, "i-new", alive([10])), { action: "refuse", holder });
  });
  it("a volume held by a dead instance is detached from it and attached to the replacement", () => {
    const holder = { instanceId: "i-old", pid: 10 };
    assert.deepEqual(decideAttach(holder, "i-new", alive([])), {
      action: "detach-then-attach",
      from: holder,
    });
  });
  it("attaching to the holder again changes nothing", () => {
    assert.deepEqual(decideAttach({ instanceId: "i-a", pid: 1 }, "i-a", alive([1])), {
      action: "already-attached",
    });
  });
  it("only the holder can detach", () => {
    assert.equal(decideDetach({ instanceId: "i-a", pid: 1 }, "i-b"), "not-attached");
    assert.equal(decideDetach({ instanceId: "i-a", pid: 1 }, "i-a"), "detach");
    assert.equal(decideDetach(undefined, "i-a"), "not-attached");
  });
});

describe("data volume: a directory that belongs to the group", () => {
  it("follows the replacement once the holder dies, with events, and its data stays", async () => {
    const running = new Set<number>([100]);
    const bus = new EventBus();
    const dir = tempDir();
    const volume = new DataVolume(`${dir}/web`, bus, (pid) => running.has(pid));
    volume.attach("i-old", 100);
    assert.throws(() => volume.attach("i-new", 200), VolumeInUseError);
    assert.equal(volume.attachment?.instanceId, "i-old", "a refused attach leaves the holder attached");
    running.delete(100); // the old instance is killed
    running.add(200);
    volume.attach("i-new", 200);
    assert.deepEqual(volume.attachment, { instanceId: "i-new", pid: 200 });
    const types = bus.recent().map((e) => `${e.type}:${"instanceId" in e ? e.instanceId : ""}`);
    assert.deepEqual(
      types.filter((t) => t.startsWith("volume.")),
      ["volume.attached:i-old", "volume.detached:i-old", "volume.attached:i-new"],
    );
  });

  it("the attachment is recorded on disk: a new runtime sees who holds it", () => {
    const dir = `${tempDir()}/web`;
    new DataVolume(dir, new EventBus(), () => true).attach("i-a", 1);
    const again = new DataVolume(dir, new EventBus(), () => true);
    assert.equal(again.attachment?.instanceId, "i-a");
    assert.throws(() => again.attach("i-b", 2), VolumeInUseError);
    assert.equal(again.detach("i-b", "not the holder"), false);
    assert.equal(again.detach("i-a", "terminated"), true);
    assert.equal(again.attachment, undefined);
  });
});

function server(name: string): Promise<Server> {
  const s = createServer((_req, res) => res.end(name));
  return new Promise((resolve) => s.listen(0, "127.0.0.1", () => resolve(s)));
}
const portOf = (s: Server) => (s.address() as { port: number }).port;

describe("stable address (the Elastic IP)", () => {
  it("answers from the associated instance, resets while associated with none, then answers from the replacement", async () => {
    const bus = new EventBus();
    const address = new StableAddress({ host: "127.0.0.1", port: 0 }, bus);
    const a = await server("a");
    const b = await server("b");
    await address.listen();
    try {
      address.associate({ instanceId: "i-a", host: "127.0.0.1", port: portOf(a) });
      const first = await request(`${address.url}/`, { reset: true });
      assert.equal(await first.body.text(), "a");
      address.disassociate("i-a", "terminated");
      await assert.rejects(request(`${address.url}/`, { reset: true }));
      address.associate({ instanceId: "i-b", host: "127.0.0.1", port: portOf(b) });
      const second = await request(`${address.url}/`, { reset: true });
      assert.equal(await second.body.text(), "b");
      const events = bus.recent().filter((e) => e.type.startsWith("address."));
      assert.deepEqual(
        events.map((e) => e.type),
        ["address.associated", "address.disassociated", "address.associated"],
      );
    } finally {
      await address.close();
      a.close();
      b.close();
    }
  });
});

describe("the single instance's health check rule (pure)", () => {
  const thresholds = { healthyThreshold: 2, unhealthyThreshold: 3 };
  const run = (outcomes: boolean[]) =>
    outcomes.reduce((s, passed) => nextHealth(s, passed, thresholds), initialHealth()).health;

  it("turns healthy after healthyThreshold passes in a row, not before", () => {
    assert.equal(run([true]), "initial");
    assert.equal(run([true, true]), "healthy");
    assert.equal(run([true, false, true]), "initial");
  });

  it("turns unhealthy after unhealthyThreshold failures in a row; a pass in between resets the count", () => {
    assert.equal(run([true, true, false, false]), "healthy");
    assert.equal(run([true, true, false, false, false]), "unhealthy");
    assert.equal(run([true, true, false, false, true, false, false]), "healthy");
    assert.equal(run([false, false, false]), "unhealthy", "a version that never passes");
  });

  it("an unhealthy instance is healthy again only after healthyThreshold passes", () => {
    assert.equal(run([false, false, false, true]), "unhealthy");
    assert.equal(run([false, false, false, true, true]), "healthy");
  });
});

describe("the single instance's health check settings come from the derived instance health check", () => {
  it("uses the target group's path, thresholds and local timings", async () => {
    const { loadStack } = await import("../src/stack/index.ts");
    const { derive } = await import("../src/stack/derived.ts");
    const { singleInstanceHealthCheck } = await import("../src/local/single-instance/stack.ts");
    const { configPath } = await import("./helpers.ts");
    const stack = await loadStack(configPath, "dev", { topology: "single-instance" });
    const hc = stack.targetGroup.healthCheck;
    assert.deepEqual(singleInstanceHealthCheck(derive(stack)), {
      path: hc.path,
      healthyThreshold: hc.healthyThreshold,
      unhealthyThreshold: hc.unhealthyThreshold,
      intervalMs: hc.local.intervalMs,
      timeoutMs: hc.local.timeoutMs,
    });
  });
});

describe("the stable address ends a client without leaking its socket", () => {
  // The instance's FIN piped to the client (end), then its reset in the same tick: a reset of a
  // socket whose shutdown is pending fails in libuv, the handle is never closed, and the process
  // cannot exit. abortClient must close the socket in both orders.
  for (const ended of [false, true]) {
    it(`closes a client ${ended ? "whose side was just ended" : "still open"}`, async () => {
      const accepted = new Promise<net.Socket>((resolve) => {
        const server = net.createServer((s) => {
          server.close();
          resolve(s);
        });
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as net.AddressInfo).port;
          const peer = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
          peer.on("error", () => undefined);
          peer.resume();
          peer.on("close", () => undefined);
          setTimeout(() => peer.destroy(), 5000).unref();
        });
      });
      const client = await accepted;
      client.on("error", () => undefined);
      const closed = new Promise<boolean>((resolve) => {
        client.once("close", () => resolve(true));
        setTimeout(() => resolve(false), 10_000).unref();
      });
      if (ended) client.end();
      abortClient(client);
      assert.equal(await closed, true, "the socket closed (its handle released)");
    });
  }
});

/**
 * The stable address as the dashboard's traffic source: it reads the HTTP exchanges it forwards
 * (a real HTTP server behind it, real clients in front) and reports each answer as the load
 * balancer does, without changing what the client gets.
 */
describe("the stable address reports the answers it forwards (the dashboard's traffic)", () => {
  const answers: ObservedAnswer[] = [];
  const bus = new EventBus();
  const address = new StableAddress({ host: "127.0.0.1", port: 0 }, bus);
  address.observer = (a) => answers.push(a);
  let instance: Server;
  /** Connections of requests the instance holds unanswered: a test kills them (the instance dies). */
  const hanging: net.Socket[] = [];
  const statuses = () => answers.map((a) => a.statusCode);

  before(async () => {
    instance = createServer((req, res) => {
      const url = req.url ?? "/";
      if (url === "/fail") return void res.writeHead(503).end("unavailable");
      if (url === "/empty") return void res.writeHead(204).end();
      if (url === "/chunked") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("HTTP/1.1 500 not a status line, a body\r\n");
        return void setTimeout(() => res.end("end"), 20);
      }
      if (url === "/sized") return void res.writeHead(200, { "content-length": 7 }).end("counted");
      if (url === "/hang") return void hanging.push(req.socket); // the test kills the connection
      res.end("counted");
    });
    await new Promise<void>((resolve) => instance.listen(0, "127.0.0.1", resolve));
    await address.listen();
    address.associate({ instanceId: "i-one", host: "127.0.0.1", port: portOf(instance) });
  });
  after(async () => {
    await address.close();
    instance.closeAllConnections();
    instance.close();
  });

  it("one answer per request on a kept-alive connection, with its status, latency and instance", async () => {
    answers.length = 0;
    const pool = new Pool(address.url, { connections: 1, pipelining: 1 });
    try {
      for (const p of ["/", "/fail", "/empty", "/chunked", "/"]) {
        const res = await pool.request({ path: p, method: "GET" });
        await res.body.text();
      }
      await waitFor("five answers", () => answers.length === 5 || undefined, 5000);
      assert.deepEqual(statuses(), [200, 503, 204, 200, 200]);
      assert.ok(answers.every((a) => a.instanceId === "i-one" && a.latencyMs >= 0));
    } finally {
      await pool.close();
    }
    // An answer to HEAD has a Content-Length and no body: the next answer on the same connection
    // must still be told apart (a raw socket, so that no client closes the connection after HEAD).
    answers.length = 0;
    const socket = net.connect(address.listener.port, address.listener.host);
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString()));
    try {
      socket.write("HEAD /sized HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor("the HEAD answer", () => answers.length === 1 || undefined, 5000);
      socket.write("GET /sized HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor("the GET answer after it", () => answers.length === 2 || undefined, 5000);
      assert.deepEqual(statuses(), [200, 200]);
      assert.match(received, /\r\n\r\ncounted$/, "the client's bytes are untouched");
    } finally {
      socket.destroy();
    }
  });

  it("a request whose connection dies before its answer is one failure (status 0)", async () => {
    answers.length = 0;
    const pending = request(`${address.url}/hang`, { reset: true, headersTimeout: 30_000 });
    const socket = await waitFor("the request reached the instance", () => hanging.pop(), 5000);
    socket.resetAndDestroy();
    // The client sees the reset, as with a real address (not its own timeout).
    await assert.rejects(pending, (e: Error & { code?: string }) => e.code === "ECONNRESET");
    await waitFor("one failure", () => answers.length === 1 || undefined, 5000);
    assert.deepEqual(statuses(), [0]);
  });

  it("a connection reset while the address points nowhere is one failure, and the next answer counts", async () => {
    answers.length = 0;
    address.disassociate("i-one", "terminated");
    await assert.rejects(request(`${address.url}/`, { reset: true }));
    address.associate({ instanceId: "i-one", host: "127.0.0.1", port: portOf(instance) });
    const res = await request(`${address.url}/`, { reset: true });
    await res.body.dump();
    await waitFor("two answers", () => answers.length === 2 || undefined, 5000);
    assert.deepEqual(statuses(), [0, 200]);
    assert.equal(answers[0]?.instanceId, undefined, "no instance behind a reset address");
  });

  it("an observer that throws is a controller error; the client still gets its answer", async () => {
    const observer = address.observer;
    address.observer = () => {
      throw new Error("meter broken");
    };
    try {
      const res = await request(`${address.url}/`, { reset: true });
      assert.equal(await res.body.text(), "counted");
      const error = await waitFor(
        "the error reported",
        () => bus.recent().find((e) => e.type === "controller.error"),
        5000,
      );
      assert.match(JSON.stringify(error), /stable-address.*meter broken|meter broken.*stable-address/);
    } finally {
      address.observer = observer;
    }
  });

  it("reads nothing once no one observes: the connection is a plain TCP pipe", async () => {
    answers.length = 0;
    const observer = address.observer;
    address.observer = undefined;
    try {
      const res = await request(`${address.url}/`, { reset: true });
      assert.equal(await res.body.text(), "counted");
      assert.equal(answers.length, 0);
    } finally {
      address.observer = observer;
    }
  });
});
