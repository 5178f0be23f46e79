import assert from "node:assert/strict";
import dgram from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { findFreePort } from "../src/shared/net.ts";
import { configPath, runCli, tempDir } from "./helpers.ts";

/**
 * Issue 25, item 8: a second stack beside a first clashes on the listener, Redis and DNS ports.
 * `up` names every port taken at once, each with the option that frees it, and starts nothing.
 * The ports are held here by plain sockets on free ports (as another stack would hold them).
 */
describe("up with its listener, Redis and DNS ports taken", { timeout: 120_000 }, () => {
  const servers: net.Server[] = [];
  let udp: dgram.Socket;
  const ports = { listener: 0, redis: 0, dns: 0 };
  const holdTcp = async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
    servers.push(server);
    return (server.address() as net.AddressInfo).port;
  };
  before(async () => {
    ports.listener = await holdTcp();
    ports.redis = await holdTcp();
    udp = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => udp.bind({ address: "127.0.0.1", port: 0 }, resolve));
    ports.dns = udp.address().port;
  });
  after(() => {
    for (const s of servers) s.close();
    udp.close();
  });

  it("names all three at once with --port, --redis-port and --dns-port, and starts nothing", async () => {
    const dir = tempDir();
    const stateDir = path.join(dir, ".stayup");
    const res = await runCli(
      [
        "up",
        "--config",
        configPath,
        "--state-dir",
        stateDir,
        "--port",
        String(ports.listener),
        "--redis-port",
        String(ports.redis),
        "--dns-port",
        String(ports.dns),
      ],
      { cwd: dir },
    );
    assert.equal(res.code, 1, res.stdout);
    assert.match(res.stderr, /3 ports the stack needs are taken/);
    assert.match(
      res.stderr,
      new RegExp(`load balancer: port ${ports.listener} on 127\\.0\\.0\\.1 .*\\(--port\\)`),
    );
    assert.match(
      res.stderr,
      new RegExp(`Redis: port ${ports.redis} on 127\\.0\\.0\\.1 .*\\(--redis-port\\)`),
    );
    assert.match(res.stderr, new RegExp(`DNS server: UDP port ${ports.dns} .*\\(--dns-port\\)`));
    assert.match(res.stderr, /fix: pass --port 0 --redis-port 0 --dns-port 0 \(free ports\)/);
    assert.doesNotMatch(res.stderr, /stayup\.config\.ts \(0 picks/);
    assert.equal(existsSync(path.join(stateDir, "processes.json")), false, "nothing was started");
  });
});

/**
 * A port chosen for a server that binds it later (redis-server, a service) comes from below the
 * kernel's ephemeral range: one from the range can meanwhile become the source port of any outgoing
 * connection on the machine, and the late bind fails (CI saw "redis-server on port 41889 exited").
 */
describe("findFreePort", () => {
  it("picks ports below the ephemeral range that can be bound", async () => {
    const ephemeralStart = Number(
      readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
    );
    const ports = await Promise.all(Array.from({ length: 20 }, () => findFreePort()));
    for (const port of ports) {
      assert.ok(port >= 10_000 && port < ephemeralStart, `${port} is not below ${ephemeralStart}`);
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: "127.0.0.1", port }, resolve);
      });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    assert.ok(new Set(ports).size > 1, "the picks are random, not one port for every caller");
  });
});
