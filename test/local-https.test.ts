/** HTTPS locally: the local certificate authority, the HTTPS listener over the balancer, the 301. */
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { Agent, request } from "undici";
import { EventBus } from "../src/local/events/bus.ts";
import { LoadBalancer } from "../src/local/load-balancer/balancer.ts";
import { HttpsListener } from "../src/local/load-balancer/https.ts";
import { TargetGroupController } from "../src/local/target-group/controller.ts";
import { ensureLocalAuthority, issueServerCertificate } from "../src/local/tls/authority.ts";
import { tempDir, waitFor } from "./helpers.ts";

const NAME = "app.stayup.test";

describe("HTTPS locally", () => {
  const cleanup: (() => unknown)[] = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  it("the local authority is created once, its private key readable by the user only", async () => {
    const stateDir = tempDir("stayup-tls-");
    const first = await ensureLocalAuthority(stateDir);
    assert.equal(first.created, true);
    assert.equal(statSync(first.privateKeyFile).mode & 0o777, 0o600);
    const second = await ensureLocalAuthority(stateDir);
    assert.equal(second.created, false);
    assert.equal(second.certificatePem.trim(), first.certificatePem.trim());
  });

  it("a client trusting the local authority gets 200 over HTTPS; HTTP answers 301 to HTTPS", async () => {
    let seen: http.IncomingHttpHeaders | undefined;
    const target = http.createServer((req, res) => {
      if (req.url !== "/health") seen = req.headers;
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("served");
    });
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", () => r()));
    cleanup.push(() => new Promise((r) => target.close(r)));
    const events = new EventBus();
    const tg = new TargetGroupController(
      { path: "/health", intervalMs: 100, timeoutMs: 50, healthyThreshold: 2, unhealthyThreshold: 2 },
      events,
    );
    let httpsPort = 0;
    const lb = new LoadBalancer(tg, events, {
      host: "127.0.0.1",
      port: 0,
      redirectToHttpsPort: () => httpsPort,
    });
    const authority = await ensureLocalAuthority(tempDir("stayup-tls-"), { dnsNames: [NAME] });
    const certificate = await issueServerCertificate(authority, [NAME, "localhost", "127.0.0.1"]);
    const listener = new HttpsListener(lb.handleRequest, { host: "127.0.0.1", port: 0, ...certificate });
    await listener.listen();
    httpsPort = listener.port;
    const httpUrl = await lb.listen();
    cleanup.push(
      () => listener.close(),
      () => lb.close(),
      () => tg.stop(),
    );
    tg.register({
      instanceId: "i-1",
      az: "eu-west-3a",
      host: "127.0.0.1",
      port: (target.address() as AddressInfo).port,
    });
    await waitFor("target healthy", () => tg.inRotation().length === 1 || undefined, 10_000);

    // Trusting the local authority, for dns.name (the client connects to loopback, names dns.name).
    const trusting = new Agent({ connect: { ca: authority.certificatePem, servername: NAME } });
    cleanup.push(() => trusting.close());
    const res = await request(`https://127.0.0.1:${httpsPort}/`, {
      dispatcher: trusting,
      headers: { host: NAME },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), "served");
    // As the ALB's HTTPS listener: the target is told the client's protocol and port, and Host.
    assert.ok(seen, "the request reached the target");
    assert.equal(seen["x-forwarded-proto"], "https");
    assert.equal(seen["x-forwarded-port"], String(httpsPort));
    assert.equal(seen.host, NAME);

    const redirect = await request(`${httpUrl}/some/path?x=1`, { headers: { host: `${NAME}:8080` } });
    assert.equal(redirect.statusCode, 301);
    assert.equal(redirect.headers.location, `https://${NAME}:${httpsPort}/some/path?x=1`);
    await redirect.body.dump();

    // Without the authority the certificate is not trusted: the trust is what makes it work.
    const untrusting = new Agent({ connect: { servername: NAME } });
    cleanup.push(() => untrusting.close());
    await assert.rejects(
      request(`https://127.0.0.1:${httpsPort}/`, { dispatcher: untrusting }),
      /certificate/,
    );
  });
});
