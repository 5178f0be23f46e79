import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { request } from "undici";
import { ClientFigures } from "../src/drills/client-figures.ts";
import type { DrillReport } from "../src/drills/report.ts";
import { StackClient } from "../src/local/control-plane/client.ts";
import type { ClientTrafficEvent, TimedStackEvent } from "../src/local/events/bus.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { findFreePort } from "../src/shared/net.ts";
import { artifactPath, launchChromium } from "./browser.ts";
import { repoRoot, runCli, tempDir, upDetached, waitFor } from "./helpers.ts";

/** Cross-region Redis "replica": a failback waits for the primary's Redis, probing the instances' /health. */
const replicaConfig = path.join(repoRoot, "test/fixtures/cross-region-replica.config.ts");

/**
 * Issue 25, item 7: the dashboard's figures are client traffic, counted where it fails. One stack
 * (two regions, DNS failover, a cross-region Redis replica), its dashboard open in a real Chromium
 * throughout: with no client the balancers' count stays put through a region outage and its
 * failback (the failover's probes are not clients, whatever path they ask); then a region-outage
 * drill, whose refused connections no balancer sees, shows on the page with its report's counts.
 */
describe("the dashboard's client figures", { timeout: 400_000 }, () => {
  const dir = tempDir();
  const stateDir = path.join(dir, ".stayup");
  const common = () => ["--config", replicaConfig, "--state-dir", stateDir];
  let browser: Browser;
  let page: Page;
  let client: StackClient;
  const pageErrors: string[] = [];
  const status = async () =>
    JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as StackStatus;
  /** What the page says the balancers counted since it opened. */
  const balancerTotals = async () => {
    const summary = page.locator("#traffic-summary");
    return {
      ok: Number(await summary.getAttribute("data-ok-total")),
      failed: Number(await summary.getAttribute("data-failed-total")),
    };
  };
  /** Every event of the stack since the file began, read by one stream (as a drill reads them). */
  const events: TimedStackEvent[] = [];
  const reader = new AbortController();
  let reading: Promise<void> = Promise.resolve();
  const lastSeq = () => events[events.length - 1]?.seq ?? 0;
  /** The first event after `since` that `match` accepts. */
  const nextEvent = (since: number, match: (e: TimedStackEvent) => boolean, timeoutMs: number) =>
    waitFor(`an event after #${since}`, () => events.find((e) => e.seq > since && match(e)), timeoutMs);

  before(async () => {
    await upDetached(stateDir, { config: replicaConfig, cwd: dir, dnsPort: await findFreePort() });
    const found = StackClient.find(stateDir);
    assert.ok(found, "the stack's state file");
    client = found;
    reading = (async () => {
      for await (const e of client.events(reader.signal)) events.push(e);
    })();
    await waitFor("the event history", () => events.length > 0 || undefined);
    const s = await status();
    assert.ok(s.dashboard, "status --json gives the dashboard's URL");
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(m.text());
    });
    await page.goto(s.dashboard);
    await page.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
    await page.waitForSelector("#traffic-summary[data-ok-total]", { timeout: 30_000 });
  });

  after(async () => {
    reader.abort();
    await reading;
    await browser?.close();
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("with no client, the balancers count nothing while the failover's probes run, through a region outage and its failback", async () => {
    const s = await status();
    const primary = s.region;
    const secondary = s.regions.find((r) => r.role === "secondary");
    assert.ok(secondary, "a secondary region");
    // Nothing but the stack itself has sent a request (the probes run each second since it started).
    assert.deepEqual(await balancerTotals(), { ok: 0, failed: 0 }, "no client yet");
    const since = lastSeq();
    await client.fault("region-outage", { region: primary });
    await nextEvent(since, (e) => e.type === "failover.action" && e.action === "failover", 60_000);
    const restoreFrom = lastSeq();
    await client.fault("region-restore", { region: primary });
    // The primary's Redis follows the secondary's until it caught up: meanwhile the probe asks the
    // instances' /health through the primary's balancer, one a second, until the failback.
    await nextEvent(restoreFrom, (e) => e.type === "redis.cross-region-failback", 90_000);
    await nextEvent(restoreFrom, (e) => e.type === "failover.action" && e.action === "failback", 60_000);
    // The probes keep running: two more of the page's one-second samples.
    const t = Date.now();
    await waitFor(
      "two more traffic samples on the page",
      () =>
        page.evaluate(
          (after) =>
            (
              (document.getElementById("chart") as HTMLElement & { uplot?: { data: number[][] } }).uplot
                ?.data[0] ?? []
            ).filter((x) => x * 1000 > after).length >= 2 || undefined,
          t,
        ),
      30_000,
    );
    assert.deepEqual(await balancerTotals(), { ok: 0, failed: 0 }, "still no client request");
    assert.match((await page.textContent("#client-traffic")) ?? "", /no client of stayup's is sending/);
  });

  it("a region-outage drill: the page shows its client's figures, the refused connections included, as its report counts them", async () => {
    // Back at standby after the previous test's failback, as the drill expects to find it.
    await waitFor(
      "the secondary back at its standby size",
      async () => {
        const s = await status();
        const r = s.regions.find((x) => x.role === "secondary");
        return (r && r.instances.length === r.group.desired && !r.down) || undefined;
      },
      60_000,
    );
    const balancersBefore = await balancerTotals();
    const drill = await runCli(
      [
        "drill",
        "region-outage",
        "--json",
        "--rate",
        "100",
        "--warmup-seconds",
        "1",
        "--cooldown-seconds",
        "1",
        "--outage-seconds",
        "1",
        ...common(),
      ],
      { cwd: dir, timeoutMs: 180_000 },
    );
    const report = JSON.parse(drill.stdout || "{}") as DrillReport;
    assert.equal(report.drill, "region-outage", drill.stderr);
    writeFileSync(artifactPath("dashboard-client-figures-region-outage.json"), drill.stdout);
    const refused = report.failures.ECONNREFUSED ?? 0;
    assert.ok(
      refused > 0,
      `the drill's client saw connections refused: ${report.requests} sent, ${report.failed} failed ${JSON.stringify(report.failures)}; ${drill.stderr.slice(-2000)}`,
    );
    // The client's last report is published before the drill reports: the page gets it at once.
    const row = page.locator('#client-traffic tr[data-client="drill region-outage"]');
    await waitFor(
      "the drill's client figures, ended, on the page",
      async () => (await row.count()) === 1 && (await row.getAttribute("data-final")) === "true",
      15_000,
    );
    const shown = {
      ok: Number(await row.getAttribute("data-ok-total")),
      failed: Number(await row.getAttribute("data-failed-total")),
      refused: Number(await row.getAttribute("data-refused-total")),
    };
    // Each request once, counted by the same client: the totals are the report's exactly.
    assert.deepEqual(
      shown,
      { ok: report.requests - report.failed, failed: report.failed, refused },
      `the page's client figures against the report's (failures ${JSON.stringify(report.failures)})`,
    );
    // What the balancers alone showed: the refused connections never reached one.
    const balancers = await balancerTotals();
    assert.ok(
      balancers.failed - balancersBefore.failed < report.failed,
      `the balancers counted ${balancers.failed - balancersBefore.failed} failed, the client ${report.failed}`,
    );
    assert.match((await row.textContent()) ?? "", /drill region-outage/);
  });

  it("a client's seconds the stack did not take are sent again: none is lost", async () => {
    const since = lastSeq();
    let calls = 0;
    const figures = new ClientFigures("test client", async (report) => {
      // The first report finds the control plane unreachable; the next ones reach the real one.
      if (calls++ === 0) throw new Error("the control plane did not answer");
      await client.reportClientTraffic(report);
    });
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 3000;
    figures.record({ ok: true }, t0);
    figures.record({ ok: false, reason: "ECONNREFUSED" }, t0 + 10);
    figures.record({ ok: false, reason: "UND_ERR_HEADERS_TIMEOUT" }, t0 + 1200);
    figures.record({ ok: false, reason: "503" }, t0 + 2100);
    figures.record({ ok: true }, t0 + 2200);
    await figures.close();
    assert.ok(calls >= 2, `sent again after the failure (${calls} calls)`);
    const mine = (e: TimedStackEvent): e is TimedStackEvent & ClientTrafficEvent =>
      e.type === "client.traffic" && e.clientId === figures.clientId;
    await nextEvent(since, (e) => mine(e) && e.final, 10_000);
    const seen = events.filter(mine);
    const seconds = seen.flatMap((e) => e.seconds);
    assert.deepEqual(
      seconds.map((s) => [s.secondStartMs - t0, s.ok, s.failed, s.refused, s.timedOut]),
      [
        [0, 1, 1, 1, 0],
        [1000, 0, 1, 0, 1],
        [2000, 1, 1, 0, 0],
      ],
    );
  });

  it("POST /client-traffic takes only well-formed figures, with the token", async () => {
    const url = `${client.state.controlUrl}/client-traffic`;
    const body = JSON.stringify({ client: "x", clientId: "y", seconds: [], final: true });
    const anonymous = await request(url, { method: "POST", body });
    assert.equal(anonymous.statusCode, 401);
    await anonymous.body.dump();
    const headers = { authorization: `Bearer ${client.state.token}`, "content-type": "application/json" };
    const bad = await request(url, {
      method: "POST",
      headers,
      body: JSON.stringify({
        client: "x",
        clientId: "y",
        seconds: [{ secondStartMs: 0, ok: 1, failed: 1, refused: 2, timedOut: 0 }],
      }),
    });
    assert.equal(bad.statusCode, 400);
    const answer = (await bad.body.json()) as { error: string; fix: string };
    assert.match(answer.error, /^seconds\.0: refused and timedOut are parts of failed/);
    assert.match(answer.fix, /refused \+ timedOut ≤ failed/);
    assert.deepEqual(pageErrors, []);
  });
});
