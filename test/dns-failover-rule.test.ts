/**
 * The local DNS follows Route 53's secondary-unhealthy rule: real region listeners on 127.0.0.1 and
 * 127.0.0.2 answering the region health path, the real failover controller probing them, the real
 * DNS server queried over UDP. With a health check on both records and both regions down, the
 * answer is the primary; with the SECONDARY unchecked (stayup's default), the secondary.
 */
import assert from "node:assert/strict";
import { promises as dnsPromises } from "node:dns";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { FailoverDnsServer } from "../src/local/dns/server.ts";
import { EventBus } from "../src/local/events/bus.ts";
import { FailoverController, type FailoverRegion } from "../src/local/failover/controller.ts";
import { Notifier } from "../src/local/notifications/notifier.ts";
import { derive, REGION_HEALTH_CHECK_PATH } from "../src/stack/derived.ts";
import { description } from "./aws-helpers.ts";
import { waitFor } from "./helpers.ts";

/** A region's listener: answers the region health path 200 or 503 as told. */
async function regionListener(host: string) {
  let healthy = true;
  const server = http.createServer((req, res) => {
    res.statusCode = req.url === REGION_HEALTH_CHECK_PATH && healthy ? 200 : 503;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    set healthy(value: boolean) {
      healthy = value;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function failoverPair(checkedRecords: "primary" | "both") {
  const stack = await description("dev", (d) => {
    if (d.regions.secondary) d.regions.secondary.standby = { mode: "warm", warmCapacity: 1 };
    if (d.dns) d.dns.healthCheck.checkedRecords = checkedRecords;
  });
  assert.ok(stack.dns);
  // Fast checks for the test (the description's 7 × 1 s wait out a Sentinel failover): the rule
  // under test is the answer, not the timing.
  const dns = {
    ...stack.dns,
    healthCheck: { ...stack.dns.healthCheck, failureThreshold: 2, local: { intervalMs: 50, timeoutMs: 500 } },
    local: { host: "127.0.0.1", port: 0 },
  };
  const listeners = {
    primary: await regionListener("127.0.0.1"),
    secondary: await regionListener("127.0.0.2"),
  };
  const region = (name: string, host: string, port: number): FailoverRegion => ({
    name,
    options: { listener: { host, port } },
    group: { setCapacity: () => undefined },
  });
  const events = new EventBus();
  const failover = new FailoverController({
    dns,
    primary: region("eu-west-3", "127.0.0.1", listeners.primary.port),
    secondary: region("us-east-1", "127.0.0.2", listeners.secondary.port),
    derived: { ...derive(stack), regionHealthCheckTimeoutMs: 500 },
    events,
    notifier: new Notifier(stack, events),
  });
  const server = new FailoverDnsServer(dns, events);
  await server.listen(0, () => failover.answer());
  failover.start();
  const resolver = new dnsPromises.Resolver({ timeout: 500, tries: 2 });
  resolver.setServers([`127.0.0.1:${server.port}`]);
  const resolve = async () => (await resolver.resolve4(dns.name))[0];
  const answerBecomes = (address: string) =>
    waitFor(
      `DNS answering ${address}`,
      async () => ((await resolve()) === address ? true : undefined),
      10_000,
    );
  return {
    listeners,
    events,
    resolve,
    answerBecomes,
    close: async () => {
      failover.stop();
      await server.close();
      await listeners.primary.close();
      await listeners.secondary.close();
    },
  };
}

describe("local DNS: Route 53's failover rules over real sockets", { timeout: 60_000 }, () => {
  const opened: { close: () => Promise<void> }[] = [];
  after(async () => {
    for (const o of opened) await o.close();
  });

  it("checks on both records: the primary fails → the secondary; the secondary fails too → the primary again", async () => {
    const pair = await failoverPair("both");
    opened.push(pair);
    assert.equal(await pair.resolve(), "127.0.0.1");
    pair.listeners.primary.healthy = false;
    await pair.answerBecomes("127.0.0.2");
    // Route 53 (ResourceRecordSet.Failover): the secondary unhealthy, the primary is answered,
    // whatever the primary's health.
    pair.listeners.secondary.healthy = false;
    await pair.answerBecomes("127.0.0.1");
    const changes = pair.events
      .recent()
      .filter((e) => e.type === "dns.health-changed")
      .map((e) => (e.type === "dns.health-changed" ? `${e.region} ${e.healthy} → ${e.answer}` : ""));
    assert.deepEqual(changes, ["eu-west-3 false → 127.0.0.2", "us-east-1 false → 127.0.0.1"]);
  });

  it("no check on the SECONDARY (the default): both down, the secondary is still answered", async () => {
    const pair = await failoverPair("primary");
    opened.push(pair);
    pair.listeners.secondary.healthy = false;
    pair.listeners.primary.healthy = false;
    await pair.answerBecomes("127.0.0.2");
    // It stays so: nothing checks the secondary.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await pair.resolve(), "127.0.0.2");
  });
});
