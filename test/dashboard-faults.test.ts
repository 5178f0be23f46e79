import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import type { DrillDesk } from "../src/local/control-plane/drills.ts";
import { StreamGate } from "../src/local/control-plane/streams.ts";
import { Dashboard } from "../src/local/dashboard/dashboard.ts";
import { EventBus } from "../src/local/events/bus.ts";
import type { LocalStack } from "../src/local/runtime.ts";
import { launchChromium } from "./browser.ts";
import { standInStatus, tempDir } from "./helpers.ts";

/**
 * Issue 25: the dashboard shows every fault in force with the command that clears it, as `stayup
 * status` does, and drops them once cleared. The dashboard is the real one (its page, its bundled
 * script, its event stream) over a stand-in stack whose status() the test sets: no stack is
 * started, one browser page is opened.
 */
describe("the dashboard's faults in force", { timeout: 120_000 }, () => {
  const status = standInStatus({
    faults: [
      {
        id: "az-outage:eu-west-3:eu-west-3a",
        kind: "az-outage",
        region: "eu-west-3",
        description: "availability zone eu-west-3a impaired (its instances killed, nothing launches there)",
        since: new Date().toISOString(),
        owner: { lease: "l", drill: "az-outage", pid: 1 },
        clear: "stayup faults clear",
      },
    ],
  });
  const stack = {
    events: new EventBus(),
    status: () => status,
    options: { stateDir: tempDir() },
  } as unknown as LocalStack;
  const drills = {
    onChange: () => () => {},
    state: () => ({ available: [], reports: [] }),
  } as unknown as DrillDesk;
  const dashboard = new Dashboard(stack, drills, new StreamGate());
  const server = createServer((req, res) => dashboard.handle(req, res, new URL(req.url ?? "/", "http://x")));
  let browser: Browser;
  let base = "";
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    dashboard.close();
    server.close();
  });

  it("lists each fault and `stayup faults clear`; gone once cleared", async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/dashboard#token=t`);
    const faults = page.locator("#faults");
    await faults.locator("li[data-fault]").first().waitFor();
    const text = (await faults.innerText()).replace(/\s+/g, " ");
    assert.match(text, /Faults in force \(1\)/);
    assert.match(text, /availability zone eu-west-3a impaired .*\(drill az-outage: cleared when it ends\)/);
    assert.match(text, /clear them: stayup faults clear/);
    // Cleared: the next status (each second) empties the list.
    status.faults = [];
    await page.waitForFunction(() => document.querySelectorAll("#faults li").length === 0);
    assert.equal((await faults.innerText()).trim(), "");
  });
});
