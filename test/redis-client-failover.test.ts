import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { createWebService, type WebService } from "../src/web-service/server.ts";
import { TestRedis, waitFor } from "./helpers.ts";

/**
 * A Sentinel whose timing the test controls: it names `master` as the primary, answers
 * `get-master-addr-by-name` after `resolveDelayMs`, and publishes `+switch-master` to its
 * subscribers when told. Real Sentinels decide when they publish; this one lets the test put the
 * message exactly where a loaded machine put it (issue 25, item 2): while the client asks who is primary.
 */
class ScriptedSentinel {
  master: number;
  resolveDelayMs = 0;
  /** Called when a client asks for the primary (before the answer is sent). */
  onResolve?: () => void;
  private readonly subscribers = new Set<net.Socket>();
  private server?: net.Server;
  port = 0;

  constructor(master: number) {
    this.master = master;
  }

  async start(): Promise<void> {
    this.server = net.createServer((socket) => {
      let buffered = "";
      socket.on("error", () => undefined);
      socket.on("close", () => this.subscribers.delete(socket));
      socket.on("data", (chunk) => {
        buffered += chunk.toString("latin1");
        for (;;) {
          const parsed = parseCommand(buffered);
          if (!parsed) break;
          buffered = buffered.slice(parsed.length);
          this.answer(socket, parsed.args);
        }
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    this.port = (this.server?.address() as net.AddressInfo).port;
  }

  private answer(socket: net.Socket, args: string[]): void {
    const [command = "", sub = ""] = args.map((a) => a.toLowerCase());
    if (command === "sentinel" && sub === "get-master-addr-by-name") {
      this.onResolve?.();
      const port = String(this.master);
      setTimeout(() => {
        if (!socket.destroyed) socket.write(`*2\r\n${bulk("127.0.0.1")}${bulk(port)}`);
      }, this.resolveDelayMs);
    } else if (command === "sentinel" && sub === "sentinels") {
      socket.write("*0\r\n");
    } else if (command === "subscribe") {
      this.subscribers.add(socket);
      socket.write(`*3\r\n${bulk("subscribe")}${bulk(args[1] ?? "")}:1\r\n`);
    } else {
      socket.write("+OK\r\n");
    }
  }

  publishSwitch(fromPort: number, toPort: number): void {
    const message = `stayup 127.0.0.1 ${fromPort} 127.0.0.1 ${toPort}`;
    for (const s of this.subscribers)
      s.write(`*3\r\n${bulk("message")}${bulk("+switch-master")}${bulk(message)}`);
  }

  async stop(): Promise<void> {
    for (const s of this.subscribers) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

const bulk = (s: string) => `$${Buffer.byteLength(s, "latin1")}\r\n${s}\r\n`;

/** One RESP command (an array of bulk strings) from the start of `text`, or undefined if incomplete. */
function parseCommand(text: string): { args: string[]; length: number } | undefined {
  const header = /^\*(\d+)\r\n/.exec(text);
  if (!header) return undefined;
  let at = header[0].length;
  const args: string[] = [];
  for (let i = 0; i < Number(header[1]); i++) {
    const size = /^\$(\d+)\r\n/.exec(text.slice(at));
    if (!size) return undefined;
    at += size[0].length;
    if (text.length < at + Number(size[1]) + 2) return undefined;
    args.push(text.slice(at, at + Number(size[1])));
    at += Number(size[1]) + 2;
  }
  return { args, length: at };
}

/**
 * Issue 25, item 2: under CPU load a redis-failover drill left both instances answering 503
 * ("Connection is closed.") for minutes after Sentinel had promoted a replica, until the region
 * was called down. ioredis's failover detector, on `+switch-master`, cancels a connect in progress;
 * if that connect was asking a Sentinel for the primary, it fails and ioredis stops retrying. The
 * web service reconnects after such an end: its counter serves again from the new primary.
 */
describe("the counter's Redis client after a failover message mid-connect", { timeout: 60_000 }, () => {
  let oldPrimary: TestRedis;
  let newPrimary: TestRedis;
  let sentinel: ScriptedSentinel;
  let service: WebService;

  before(async () => {
    oldPrimary = await TestRedis.start();
    newPrimary = await TestRedis.start();
    sentinel = new ScriptedSentinel(oldPrimary.port);
    await sentinel.start();
    service = createWebService({
      identity: { instanceId: "i-client0001", availabilityZone: "az-a", region: "test" },
      redis: {
        sentinels: [{ host: "127.0.0.1", port: sentinel.port }],
        name: "stayup",
        failoverDetector: true,
      },
      logLevel: "silent",
    });
  });
  after(async () => {
    await service?.shutdown();
    await sentinel?.stop();
    await oldPrimary?.stop();
    await newPrimary?.stop();
  });

  const count = async () => {
    const res = await service.app.inject({
      method: "GET",
      url: "/",
      headers: { accept: "application/json" },
    });
    return { status: res.statusCode, body: res.json() as { count?: number; reason?: string } };
  };

  it("serves counts from the new primary once Sentinel names it", async () => {
    await waitFor("the counter served from the first primary", async () => (await count()).status === 200);
    await newPrimary.stop();
    newPrimary = new TestRedis(newPrimary.port);
    await newPrimary.start();
    const admin = new Redis({ port: newPrimary.port });
    await admin.set("count", 1000);
    admin.disconnect();

    // The failover: the client's connection to the old primary drops; while it asks the Sentinel
    // who is primary now, the Sentinel announces the switch.
    sentinel.master = newPrimary.port;
    sentinel.resolveDelayMs = 300;
    let announced = false;
    sentinel.onResolve = () => {
      if (announced) return;
      announced = true;
      sentinel.publishSwitch(oldPrimary.port, newPrimary.port);
    };
    await oldPrimary.stop();
    await waitFor("the switch announced while the client asked for the primary", () => announced);

    const served = await waitFor(
      "a count from the new primary",
      async () => {
        const answer = await count();
        return answer.status === 200 ? answer : undefined;
      },
      20_000,
    );
    assert.ok((served.body.count ?? 0) > 1000, `count ${served.body.count} is the new primary's`);
    assert.equal(service.redis.status, "ready");
  });
});
