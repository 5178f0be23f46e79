import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { request } from "undici";
import { StackClient } from "../src/local/control-plane/client.ts";
import { EventBus } from "../src/local/events/bus.ts";
import { LoadBalancer } from "../src/local/load-balancer/balancer.ts";
import type { Target } from "../src/local/target-group/controller.ts";
import { TrafficMeter } from "../src/local/dashboard/traffic-meter.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { artifactPath, launchChromium } from "./browser.ts";
import { isAlive, runCli, tempDir, upDetached, waitFor } from "./helpers.ts";

/** The dashboard of a stack started as a user would, in a real Chromium. */
describe("live dashboard", { timeout: 300_000 }, () => {
  const dir = tempDir();
  const stateDir = path.join(dir, ".stayup");
  let browser: Browser;
  let page: Page;
  let dashboard: URL;
  let listener = "";
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  /** Every CSP violation any page of the dashboard's context reported (the report tab included). */
  const cspViolations: string[] = [];
  const status = async () =>
    JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as StackStatus;
  const tileState = (id: string) =>
    page.evaluate((instanceId) => {
      const tile = document.querySelector(`[data-instance="${instanceId}"]`) as HTMLElement | null;
      return tile ? { state: tile.dataset.state, health: tile.dataset.health } : undefined;
    }, id);

  before(async () => {
    const up = await upDetached(stateDir, { cwd: dir, timeoutMs: 90_000 });
    assert.match(up.stdout, /dashboard http:\/\/127\.0\.0\.1:\d+\/dashboard#token=[\w-]+/);
    const s = await status();
    assert.ok(s.dashboard, "status --json gives the dashboard's URL");
    dashboard = new URL(s.dashboard);
    listener = s.listener;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await watchCsp(page.context(), cspViolations);
    page.on("request", (r) => requests.push(r.url()));
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(e.message));
    await page.goto(dashboard.href);
    await page.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
    // Set once; still there at the end means the page never reloaded.
    await page.evaluate(() => Object.assign(window, { loadedOnce: true }));
  });

  after(async () => {
    await browser?.close();
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("is behind the control plane's token: without it, only the empty shell and 401 for every datum", async () => {
    const token = tokenOf(dashboard);
    const shell = await request(`${dashboard.origin}/dashboard`);
    assert.equal(shell.statusCode, 200);
    const html = await shell.body.text();
    const s = await status();
    for (const secret of [token, s.listener, ...s.instances.map((i) => i.id)]) {
      assert.ok(!html.includes(secret), `the shell holds nothing of the stack (${secret})`);
    }
    for (const route of ["/dashboard/stream", "/drills", "/status", "/events"]) {
      const res = await request(`${dashboard.origin}${route}`);
      assert.equal(res.statusCode, 401, route);
      await res.body.dump();
    }
    // The token in a query logs nobody in any more, and no answer sets a cookie.
    const query = await request(`${dashboard.origin}/dashboard/stream?token=${token}`);
    assert.equal(query.statusCode, 401);
    assert.equal(query.headers["set-cookie"], undefined);
    await query.body.dump();
  });

  it("keeps the token to its own server: a second server on 127.0.0.1, the load balancer and what is behind one get none of it", async () => {
    const token = tokenOf(dashboard);
    const seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];
    const other = http.createServer((req, res) => {
      seen.push({ url: req.url ?? "", headers: req.headers });
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!doctype html><title>other</title><a id="to-balancer" href="${listener}/">balancer</a>`);
    });
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    // What an instance gets through a balancer: a recording server as the one target of a real
    // LoadBalancer (the stack's instances cannot tell what they were sent).
    const atInstance: { url: string; headers: http.IncomingHttpHeaders }[] = [];
    const instance = http.createServer((req, res) => {
      atInstance.push({ url: req.url ?? "", headers: req.headers });
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>instance</title>");
    });
    await new Promise<void>((resolve) => instance.listen(0, "127.0.0.1", resolve));
    const target: Target = {
      instanceId: "i-recording",
      az: "eu-west-3a",
      host: "127.0.0.1",
      port: (instance.address() as AddressInfo).port,
      health: "healthy",
      consecutiveSuccesses: 2,
      consecutiveFailures: 0,
      registeredAt: 0,
    };
    const balancer = new LoadBalancer(
      { routable: () => [target], get: () => target, reportConnectionFailure: () => undefined },
      new EventBus(),
      { host: "127.0.0.1", port: 0 },
    );
    const balancerUrl = await balancer.listen();
    // What the browser puts on the wire to the stack's balancer (cookies included): all it could forward.
    const toBalancer: Promise<{ url: string; headers: Record<string, string> }>[] = [];
    const context = await browser.newContext();
    const cspInContext: string[] = [];
    await watchCsp(context, cspInContext);
    // A browser that logged in with an earlier version holds its host-wide cookies: the
    // dashboard clears them on the first visit, before the browser goes anywhere else.
    const controlPort = dashboard.port;
    await context.addCookies(
      [`stayup_token_${controlPort}`, "stayup_token"].map((name) => ({
        name,
        value: token,
        domain: "127.0.0.1",
        path: "/",
        httpOnly: true,
        sameSite: "Strict" as const,
      })),
    );
    context.on("request", (r) => {
      if (r.url().startsWith(listener))
        toBalancer.push(r.allHeaders().then((headers) => ({ url: r.url(), headers })));
    });
    try {
      const tab = await context.newPage();
      await tab.goto(dashboard.href);
      await tab.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
      assert.equal(tab.url(), `${dashboard.origin}/dashboard`, "the token left the address bar");
      assert.deepEqual(await context.cookies(), [], "the old cookies were cleared");
      // Left from the logged-in page (a Referer would name it), typed, and in a second tab.
      await tab.evaluate((u) => {
        location.href = u;
      }, `${otherUrl}/from-dashboard`);
      await tab.waitForURL(`${otherUrl}/from-dashboard`);
      await tab.goto(`${otherUrl}/typed`);
      const second = await context.newPage();
      await second.goto(`${otherUrl}/second-tab`);
      // The stack's own load balancer, followed from a link and typed.
      await Promise.all([second.waitForURL(`${listener}/`), second.click("#to-balancer")]);
      await tab.goto(`${listener}/?typed`);
      assert.match((await tab.textContent("#count")) ?? "", /^\d+$/, "an instance answered the page");
      // A balancer with an instance that records what it is sent, typed and from the dashboard.
      await tab.goto(`${balancerUrl}/typed`);
      await tab.goto(`${dashboard.origin}/dashboard`);
      await tab.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
      await tab.evaluate((u) => {
        location.href = u;
      }, `${balancerUrl}/from-dashboard`);
      await tab.waitForURL(`${balancerUrl}/from-dashboard`);
      // Back on the dashboard in the first tab: still logged in (the tab kept its session).
      await tab.goto(`${dashboard.origin}/dashboard`);
      await tab.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
    } finally {
      await context.close();
      other.close();
      instance.close();
      await balancer.close();
    }
    assert.deepEqual(cspInContext, [], "no CSP violation in this context either");
    for (const url of ["/typed", "/from-dashboard"]) {
      assert.ok(
        atInstance.some((r) => r.url === url),
        `the instance behind the balancer got ${url}`,
      );
    }
    for (const url of ["/from-dashboard", "/typed", "/second-tab"]) {
      assert.ok(
        seen.some((r) => r.url === url),
        `the second server got ${url}`,
      );
    }
    // The dashboard's Referrer-Policy: leaving it names nothing, not even its origin.
    assert.equal(seen.find((r) => r.url === "/from-dashboard")?.headers.referer, undefined);
    const balancerGot = await Promise.all(toBalancer);
    assert.ok(
      seen.length >= 3 && balancerGot.length >= 2,
      `${seen.length} requests to the second server, ${balancerGot.length} to the balancer`,
    );
    for (const r of [...seen, ...balancerGot, ...atInstance]) {
      assert.equal(r.headers.cookie, undefined, `no cookie to ${r.url}`);
      assert.equal(r.headers.authorization, undefined, `no Authorization to ${r.url}`);
      assert.ok(
        !String(r.headers.referer ?? "").startsWith(dashboard.origin),
        `no Referer to ${r.url} names the dashboard`,
      );
      assert.ok(!r.url.includes(token) && !JSON.stringify(r.headers).includes(token), `no token to ${r.url}`);
    }
  });

  it("shows every instance that stayup status lists, in its AZ column, healthy", async () => {
    const s = await status();
    const instances = s.regions.flatMap((r) => r.instances.map((i) => ({ ...i, region: r.name })));
    assert.ok(instances.length >= 2);
    for (const i of instances) {
      const tile = page.locator(`[data-region="${i.region}"] [data-az="${i.az}"] [data-instance="${i.id}"]`);
      await tile.waitFor({ timeout: 15_000 });
      assert.equal(await tile.getAttribute("data-health"), "healthy", i.id);
    }
    const shown = await page.$$eval("[data-instance]", (tiles) =>
      tiles.map((t) => t.getAttribute("data-instance")),
    );
    assert.deepEqual(new Set(shown), new Set(instances.map((i) => i.id)));
    assert.match(
      (await page.textContent('[data-region="eu-west-3"] .group')) ?? "",
      /min 2 · desired 2 · max 4/,
    );
  });

  it("after an instance is killed, its tile leaves service and the replacement's turns healthy, without a reload", async () => {
    const before = await status();
    const victim = before.instances.find((i) => i.healthy);
    assert.ok(victim);
    process.kill(victim.pid, "SIGKILL");
    await waitFor(
      "the victim's tile out of service",
      async () => {
        const t = await tileState(victim.id);
        return t === undefined || (t.health !== "healthy" && t.state !== "in-service") || undefined;
      },
      30_000,
    );
    const replacement = await waitFor(
      "a new tile, healthy",
      async () => {
        const tiles = await page.$$eval("[data-instance]", (els) =>
          els.map((e) => ({
            id: e.getAttribute("data-instance") ?? "",
            health: e.getAttribute("data-health"),
          })),
        );
        return tiles.find((t) => t.health === "healthy" && !before.instances.some((i) => i.id === t.id));
      },
      60_000,
    );
    assert.equal(isAlive(victim.pid), false);
    const after = await status();
    assert.ok(
      after.instances.some((i) => i.id === replacement.id && i.healthy),
      "status agrees",
    );
    assert.equal(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce), true);
    const events = await page.$$eval("#event-list li", (items) =>
      items.map((li) => li.getAttribute("data-type")),
    );
    assert.ok(events.includes("instance.terminated") && events.includes("instance.replaced"), "live events");
  });

  it("counts the requests through the load balancer, live", async () => {
    // Counted since the page opened, not over the last 10 s: on a busy machine 60 requests in a row
    // can take longer than the summary's window.
    const before = Number(await page.getAttribute("#traffic-summary", "data-ok-total"));
    for (let i = 0; i < 60; i++) await (await request(`${listener}/`)).body.dump();
    // The DNS health check adds its own requests: at least ours arrive.
    await waitFor(
      "60 more successful requests on the page",
      async () =>
        Number(await page.getAttribute("#traffic-summary", "data-ok-total")) >= before + 60 || undefined,
      30_000,
    );
    assert.ok(await page.locator("#chart canvas").count(), "the chart is drawn");
  });

  it("the time axis's labels do not overlap at any width: each label's box, measured in the page, clear of the next", async () => {
    // uPlot draws the axis on a canvas: its labels' positions and texts come from the plot, their
    // widths from the canvas's own font metrics. The ticks uPlot picks depend on the width, so
    // several widths are tried.
    const measure = () =>
      page.evaluate(() => {
        const container = document.getElementById("chart") as HTMLElement & {
          uplot?: {
            width: number;
            axes: { font: [string, number]; _splits: number[]; _values: string[] }[];
            valToPos(v: number, scale: string): number;
          };
        };
        const u = container.uplot;
        const axis = u?.axes[0];
        if (!u || !axis) return undefined;
        const ctx = document.createElement("canvas").getContext("2d") as CanvasRenderingContext2D;
        ctx.font = axis.font[0];
        return {
          width: u.width,
          boxes: axis._splits.map((split, i) => {
            const text = String(axis._values[i] ?? "");
            const width = ctx.measureText(text).width / devicePixelRatio;
            const x = u.valToPos(split, "x");
            return { text, left: x - width / 2, right: x + width / 2 };
          }),
        };
      });
    try {
      // The axis spans the seconds of traffic the page has had: soon after the stack started (a fast
      // run) that is one tick's worth. Wait, at the narrowest width, for two labels to compare.
      await page.setViewportSize({ width: 700, height: 1000 });
      await waitFor(
        "two labels on the time axis at the narrowest width",
        async () => ((await measure())?.boxes.length ?? 0) >= 2 || undefined,
        90_000,
      );
      for (let viewport = 700; viewport <= 1400; viewport += 60) {
        const previous = (await measure())?.width;
        await page.setViewportSize({ width: viewport, height: 1000 });
        // The plot follows its container (a ResizeObserver): wait for its new width.
        await page
          .waitForFunction(
            (w) =>
              (document.getElementById("chart") as HTMLElement & { uplot?: { width: number } }).uplot
                ?.width !== w,
            previous,
            { timeout: 5000 },
          )
          .catch(() => undefined);
        const measured = await measure();
        assert.ok(measured && measured.boxes.length >= 2, `the axis has labels: ${JSON.stringify(measured)}`);
        const sorted = [...measured.boxes].sort((a, b) => a.left - b.left);
        for (let i = 1; i < sorted.length; i++) {
          const [a, b] = [sorted[i - 1], sorted[i]] as [(typeof sorted)[0], (typeof sorted)[0]];
          assert.ok(
            a.right <= b.left,
            `at ${viewport} px "${a.text}" and "${b.text}" overlap: ${JSON.stringify(sorted)}`,
          );
        }
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 1000 });
    }
  });

  it("a region with no instance shows no average CPU; the traffic figures say whose view they are", async () => {
    const s = await status();
    const empty = s.regions.find((r) => r.instances.length === 0);
    assert.ok(empty, "the pilot-light secondary has no instance");
    const group = page.locator(`[data-region="${empty.name}"] .group`);
    await group.waitFor({ timeout: 15_000 });
    assert.doesNotMatch((await group.textContent()) ?? "", /CPU/);
    assert.match((await page.textContent("#traffic-title")) ?? "", /through the load balancers/);
    assert.match(
      (await page.textContent("#traffic-summary")) ?? "",
      /last 10 s: .* as they arrived here \(a connection refused before: counted by the clients/,
    );
    // No drill has run yet: no client of ours to show.
    assert.match((await page.textContent("#client-traffic")) ?? "", /no client of stayup's is sending/);
  });

  it("resumes the event stream after a reconnect: only the events after Last-Event-ID", async () => {
    const token = tokenOf(dashboard);
    const first = await readStream(dashboard.origin, token, 0);
    const ids = first.map((e) => e.id);
    assert.ok(ids.length > 5, "history sent to a new page");
    const resumeAfter = ids[ids.length - 4] ?? 0;
    const resumed = await readStream(dashboard.origin, token, resumeAfter);
    assert.deepEqual(
      resumed.map((e) => e.id).slice(0, 3),
      ids.slice(-3),
      "exactly the events after the last one seen",
    );
    assert.ok(resumed.every((e) => e.id > resumeAfter));
  });

  it("starts a drill after a confirmation, shows it running, and opens its report", async () => {
    let confirmed = "";
    page.once("dialog", (d) => {
      confirmed = d.message();
      void d.accept();
    });
    await page.click('button[data-drill="kill-instance"]');
    await waitFor("the drill started", () => (confirmed ? true : undefined), 10_000);
    assert.match(confirmed, /Run the kill-instance drill/);
    const link = page.locator("#drill-report-link");
    await link.waitFor({ timeout: 120_000 });
    assert.match((await page.textContent("#drill-run h3")) ?? "", /kill-instance\s*passed/);
    assert.match((await page.textContent("#drill-run pre")) ?? "", /SIGKILL →/);
    const [report] = await Promise.all([page.context().waitForEvent("page"), link.click()]);
    await report.waitForSelector("#verdict");
    assert.equal(await report.textContent("#verdict"), "PASSED");
    // The report's inline script ran: its CSP allows it by its hash (and nothing else inline).
    assert.match((await report.textContent("#raw")) ?? "", /"drill": "kill-instance"/);
    // The tab was opened by a one-time ticket, not the token: used once, it opens nothing more.
    const opened = new URL(report.url());
    assert.ok(opened.searchParams.get("ticket") && !report.url().includes(tokenOf(dashboard)));
    const again = await request(opened.href);
    assert.equal(again.statusCode, 401);
    await again.body.dump();
    await report.close();
  });

  it("shows a zone taken down by an AZ outage as impaired, and its instances leaving", async () => {
    const client = StackClient.require(stateDir);
    const s = await status();
    const az = s.instances.find((i) => i.healthy)?.az;
    assert.ok(az);
    const lost = s.instances.filter((i) => i.az === az).map((i) => i.id);
    await client.fault("az-outage", { az });
    try {
      await page
        .locator(`[data-region="${s.region}"] .az.impaired[data-az="${az}"]`)
        .waitFor({ timeout: 15_000 });
      assert.match((await page.textContent(`[data-az="${az}"] h4`)) ?? "", /IMPAIRED/);
      await waitFor(
        "the zone's instances out of service on the page",
        async () => {
          const states = await Promise.all(lost.map((id) => tileState(id)));
          return states.every((t) => t === undefined || t.state !== "in-service") || undefined;
        },
        30_000,
      );
      await page.screenshot({ path: artifactPath("dashboard-az-outage.png"), fullPage: true });
    } finally {
      await client.fault("az-restore", { az });
    }
    await page.locator(".az.impaired").waitFor({ state: "detached", timeout: 15_000 });
  });

  it("loads nothing but from loopback, logs no console error, and is kept as a screenshot", async () => {
    await page.screenshot({ path: artifactPath("dashboard.png"), fullPage: true });
    assert.ok(requests.length >= 4);
    const offLoopback = requests.filter((u) => !/^http:\/\/127\.0\.0\.1:\d+\//.test(u));
    assert.deepEqual(offLoopback, []);
    assert.deepEqual(consoleErrors, []);
  });

  it("runs under its CSP without a single violation, in the dashboard or the report tab (and a violation would be seen)", async () => {
    assert.deepEqual(cspViolations, []);
    // The watcher sees one when there is one: an inline script, which the policy refuses.
    await page.evaluate(() => {
      const script = document.createElement("script");
      script.textContent = "document.title = 'inline ran'";
      document.body.append(script);
      script.remove();
    });
    await waitFor("the violation reported", () => (cspViolations.length > 0 ? true : undefined), 10_000);
    assert.match(cspViolations[0] ?? "", /^script-src/);
    assert.notEqual(await page.title(), "inline ran");
  });
});

/**
 * Collects the CSP violations of every page of `context` (a `securitypolicyviolation` listener set
 * before any page script runs), each as "directive blocked-uri source:line".
 */
async function watchCsp(context: BrowserContext, into: string[]): Promise<void> {
  await context.exposeFunction("reportCspViolation", (v: string) => into.push(v));
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      const report = (window as unknown as { reportCspViolation: (v: string) => void }).reportCspViolation;
      report(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
    });
  });
}

/** The token of a dashboard URL (in its fragment). */
const tokenOf = (url: URL) => new URLSearchParams(url.hash.slice(1)).get("token") ?? "";

/** The dashboard's event stream from `lastEventId` on, for one second: the ids of its events. */
async function readStream(origin: string, token: string, lastEventId: number): Promise<{ id: number }[]> {
  const controller = new AbortController();
  const res = await request(`${origin}/dashboard/stream`, {
    headers: { authorization: `Bearer ${token}`, "last-event-id": String(lastEventId) },
    signal: controller.signal,
  });
  assert.equal(res.statusCode, 200);
  let text = "";
  const timer = setTimeout(() => controller.abort(), 1000);
  try {
    for await (const chunk of res.body) text += chunk;
  } catch {
    // aborted after a second: what arrived is the answer
  } finally {
    clearTimeout(timer);
  }
  return [...text.matchAll(/^event: stack-event\nid: (\d+)$/gm)].map((m) => ({ id: Number(m[1]) }));
}

describe("dashboard traffic meter", () => {
  it("gives every second once, those closed by a later request included, gaps as zero", () => {
    const meter = new TrafficMeter(60);
    const t0 = 1_700_000_000_000;
    meter.record({ statusCode: 200, latencyMs: 2, instanceId: "i-a" }, t0 + 100);
    meter.record({ statusCode: 503, latencyMs: 1, instanceId: "i-a" }, t0 + 900);
    meter.record({ statusCode: 200, latencyMs: 4, instanceId: "i-b" }, t0 + 1100); // closes second 0
    meter.record({ statusCode: 200, latencyMs: 6, instanceId: "i-b" }, t0 + 3200); // closes 1, fills 2
    const closed = meter.tick(t0 + 4000);
    assert.deepEqual(
      closed.map((s) => [s.t - t0, s.ok, s.failed]),
      [
        [0, 1, 1],
        [1000, 1, 0],
        [2000, 0, 0],
        [3000, 1, 0],
      ],
    );
    assert.deepEqual(closed[0]?.byInstance, { "i-a": 2 });
    assert.equal(closed[3]?.p99, 6);
    assert.deepEqual(meter.tick(t0 + 4500), [], "nothing twice");
    assert.equal(meter.history().length, 4);
  });
});

/**
 * Two stacks on 127.0.0.1 in one browser: a single instance and an ECS service. Each page keeps its
 * token in its own origin's sessionStorage (per host and port), no cookie: both dashboards stay
 * logged in, and each shows its instance or tasks as tiles.
 */
describe("two dashboards on one host: single-instance and ecs", { timeout: 400_000 }, () => {
  const dir = tempDir();
  const stacks = {
    single: {
      stateDir: path.join(dir, "single"),
      topology: "single-instance",
      dashboard: new URL("http://x"),
    },
    ecs: { stateDir: path.join(dir, "ecs"), topology: "ecs", dashboard: new URL("http://x") },
  };
  let browser: Browser;
  const status = async (stateDir: string) =>
    JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as StackStatus;
  const tiles = (page: Page) =>
    page.$$eval("[data-instance]", (els) =>
      els.map((e) => ({
        id: e.getAttribute("data-instance") ?? "",
        az: e.closest("[data-az]")?.getAttribute("data-az") ?? "",
        state: e.getAttribute("data-state") ?? "",
        health: e.getAttribute("data-health") ?? "",
        serving: e.getAttribute("data-serving") ?? "",
        containerInstance: e.getAttribute("data-container-instance") ?? "",
        text: e.textContent ?? "",
      })),
    );
  /** Waits until the page shows exactly the instances (or tasks) status lists, each in its AZ. */
  const assertTilesMatchStatus = async (page: Page, stateDir: string) => {
    await waitFor(
      "a tile per instance or task that status lists, in its AZ, with its health",
      async () => {
        const s = await status(stateDir);
        const shown = await tiles(page);
        const expected = s.regions.flatMap((r) => r.instances);
        const same =
          expected.length > 0 &&
          shown.length === expected.length &&
          expected.every((i) =>
            shown.some((t) => t.id === i.id && t.az === i.az && t.state === i.state && t.health === i.health),
          );
        return same ? { s, shown } : undefined;
      },
      60_000,
    );
  };

  before(async () => {
    for (const stack of Object.values(stacks)) {
      await upDetached(stack.stateDir, {
        args: ["--topology", stack.topology],
        cwd: dir,
        timeoutMs: 180_000,
      });
      const s = await status(stack.stateDir);
      assert.ok(s.dashboard);
      stack.dashboard = new URL(s.dashboard);
    }
    assert.equal(stacks.single.dashboard.hostname, stacks.ecs.dashboard.hostname, "one host");
    assert.notEqual(stacks.single.dashboard.port, stacks.ecs.dashboard.port);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await Promise.all(Object.values(stacks).map((s) => runCli(["down", "--state-dir", s.stateDir])));
  });

  /** One browser context: one cookie jar for both stacks, as one user's browser. */
  let context: BrowserContext;
  let single: Page;
  let ecs: Page;
  const errors: string[] = [];

  it("logging into one dashboard does not log the other out", async () => {
    context = await browser.newContext();
    single = await context.newPage();
    ecs = await context.newPage();
    for (const page of [single, ecs]) page.on("pageerror", (e) => errors.push(e.message));
    // Log into each in turn, through the token URL: each page keeps its own token, no cookie.
    await single.goto(stacks.single.dashboard.href);
    await single.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
    await ecs.goto(stacks.ecs.dashboard.href);
    await ecs.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
    assert.deepEqual(await context.cookies(), [], "no cookie: nothing the browser sends to every port");
    // Both still in, without the token: a reload of each page and its stream.
    for (const [page, stack] of [
      [single, stacks.single],
      [ecs, stacks.ecs],
    ] as const) {
      const res = await page.goto(`${stack.dashboard.origin}/dashboard`);
      assert.equal(res?.status(), 200, `${stack.topology} dashboard still logged in`);
      await page.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
      const api = await page.evaluate(
        async () =>
          (
            await fetch("/status", {
              headers: { authorization: `Bearer ${sessionStorage.getItem("stayup-control-token")}` },
            })
          ).status,
      );
      assert.equal(api, 200);
    }
  });

  it("single-instance: the one instance is a tile in its zone, serving", async () => {
    await assertTilesMatchStatus(single, stacks.single.stateDir);
    const [one] = await tiles(single);
    assert.equal(one?.serving, "true", "the associated instance shows as serving");
    assert.match((await single.textContent(".group")) ?? "", /min 1 · desired 1 · max 1/);
    await single.screenshot({ path: artifactPath("dashboard-single-instance.png"), fullPage: true });
  });

  it("single-instance: counts the requests through its stable address, live, by instance", async () => {
    const s = await status(stacks.single.stateDir);
    const instanceId = s.instances[0]?.id;
    assert.ok(instanceId && s.singleInstance, "one instance behind the address");
    assert.match(
      (await single.textContent("#traffic-title")) ?? "",
      new RegExp(`stable address \\(${s.singleInstance.address.replaceAll(".", "\\.")}\\)`),
    );
    const before = Number(await single.getAttribute("#traffic-summary", "data-ok"));
    // Through the address (the stack's listener), as a client would; the instance answers 200.
    for (let i = 0; i < 40; i++) {
      const res = await request(`${s.listener}/`);
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    await waitFor(
      "40 more successful requests on the page",
      async () =>
        Number(await single.getAttribute("#traffic-summary", "data-ok")) >= before + 40 || undefined,
      20_000,
    );
    assert.match((await single.textContent("#traffic-summary")) ?? "", /last 10 s: \d+ successful/);
    assert.ok(await single.locator("#chart canvas").count(), "the chart is drawn");
    // The samples the page charts name the instance that answered, with latencies.
    const traffic = await single.evaluate(async () => {
      const res = await fetch("/dashboard/stream", {
        headers: { authorization: `Bearer ${sessionStorage.getItem("stayup-control-token")}` },
      });
      const reader = res.body?.getReader();
      let text = "";
      const helloLine = /event: hello\ndata: (.*)\n/;
      while (reader && !helloLine.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      await reader?.cancel();
      const hello = helloLine.exec(text)?.[1] ?? "{}";
      return (JSON.parse(hello) as { traffic?: { byInstance: Record<string, number>; p99: number | null }[] })
        .traffic;
    });
    const served = (traffic ?? []).reduce((n, t) => n + (t.byInstance[instanceId] ?? 0), 0);
    assert.ok(served >= 40, `${served} requests by ${instanceId} in the meter's history`);
    assert.ok(
      traffic?.some((t) => t.p99 !== null && t.p99 >= 0),
      "latencies measured",
    );
    await single.screenshot({ path: artifactPath("dashboard-single-instance-traffic.png"), fullPage: true });
  });

  it("ecs: every task is a tile on its container instance, in its zone; a killed task's is replaced live", async () => {
    await assertTilesMatchStatus(ecs, stacks.ecs.stateDir);
    const s = await status(stacks.ecs.stateDir);
    assert.ok(s.ecs && s.instances.length >= 2);
    const ecsStatus = s.ecs;
    for (const t of await tiles(ecs)) {
      assert.equal(t.health, "healthy", t.id);
      const ci = ecsStatus.containerInstances.find((c) => c.tasks.some((x) => x.id === t.id));
      assert.equal(t.containerInstance, ci?.id, `${t.id} shows its container instance`);
      assert.match(t.text, new RegExp(`task on ${ci?.id}`));
    }
    for (const ci of ecsStatus.containerInstances) {
      await ecs
        .locator(`[data-az="${ci.az}"] div.container-instance[data-container-instance="${ci.id}"]`)
        .waitFor();
    }
    assert.match(
      (await ecs.textContent(".group")) ?? "",
      new RegExp(`service min \\d+ · desired ${ecsStatus.service.desired}`),
    );
    await ecs.screenshot({ path: artifactPath("dashboard-ecs.png"), fullPage: true });
    // A task killed: its tile leaves service and a replacement task's tile turns healthy, live.
    const victim = s.instances[0];
    assert.ok(victim);
    process.kill(victim.pid, "SIGKILL");
    await waitFor(
      "the killed task's tile out of service",
      async () => {
        const t = (await tiles(ecs)).find((x) => x.id === victim.id);
        return t === undefined || t.serving !== "true" || undefined;
      },
      30_000,
    );
    await waitFor(
      "a replacement task's tile, healthy",
      async () =>
        (await tiles(ecs)).find((t) => t.health === "healthy" && !s.instances.some((i) => i.id === t.id)),
      90_000,
    );
  });

  it("logs no page error on either dashboard", async () => {
    assert.deepEqual(errors, []);
    await context.close();
  });
});
