import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { StackClient } from "../src/local/control-plane/client.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { artifactPath, launchChromium } from "./browser.ts";
import { runCli, tempDir, upDetached, waitFor } from "./helpers.ts";

/** The narrowest width the dashboard's tests check (dashboard.test.ts's time axis). */
const narrowestWidthPx = 700;

/** What the page showed of one region's versions at one render. */
interface Snapshot {
  regionVersion: string | undefined;
  roll: string | undefined;
  tiles: { id: string; version: string; other: string; role: string }[];
}

/**
 * The versions on the dashboard of a stack started as a user would, in a real Chromium at the
 * narrowest width checked: each instance's, each region's, and a real roll (`stayup roll --set`)
 * seen as it goes, then a roll stopped with rollback, its reason (user data) shown as text.
 */
describe("the dashboard's versions during a rolling deploy", { timeout: 400_000 }, () => {
  const dir = tempDir();
  const stateDir = path.join(dir, ".stayup");
  let browser: Browser;
  let page: Page;
  let primary = "";
  const pageErrors: string[] = [];
  const status = async () =>
    JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as StackStatus;
  const tiles = () =>
    page.$$eval("[data-region] [data-instance]", (els) =>
      els.map((e) => ({
        id: e.getAttribute("data-instance") ?? "",
        region: e.closest("[data-region]")?.getAttribute("data-region") ?? "",
        version: e.getAttribute("data-version") ?? "",
        other: e.getAttribute("data-other-version") ?? "",
        label: e.querySelector(".version")?.textContent ?? "",
      })),
    );
  /** Every render of the primary region's versions from now on, each once (a MutationObserver). */
  const record = () =>
    page.evaluate((region) => {
      const w = window as unknown as { versionSnapshots: unknown[] };
      w.versionSnapshots = [];
      let last = "";
      new MutationObserver(() => {
        const root = document.querySelector(`[data-region="${region}"]`);
        if (!root) return;
        const snapshot = {
          regionVersion: root.querySelector("[data-region-version]")?.getAttribute("data-region-version"),
          roll: root.querySelector("[data-roll]")?.getAttribute("data-roll"),
          tiles: [...root.querySelectorAll("[data-instance]")].map((t) => ({
            id: t.getAttribute("data-instance") ?? "",
            version: t.getAttribute("data-version") ?? "",
            other: t.getAttribute("data-other-version") ?? "",
            role: t.querySelector(".version")?.getAttribute("data-version-role") ?? "",
          })),
        };
        const json = JSON.stringify(snapshot);
        if (json !== last) w.versionSnapshots.push(snapshot);
        last = json;
      }).observe(document.getElementById("regions") as HTMLElement, { childList: true, subtree: true });
    }, primary);
  const recorded = () =>
    page.evaluate(() => (window as unknown as { versionSnapshots: Snapshot[] }).versionSnapshots);
  const rollLine = async () => {
    const line = page.locator(`[data-region="${primary}"] .roll`);
    return (await line.count()) === 0
      ? undefined
      : {
          phase: (await line.getAttribute("data-roll")) ?? "",
          from: (await line.getAttribute("data-from")) ?? "",
          text: (await line.textContent()) ?? "",
        };
  };
  /** The page shows every instance status lists on `version`, none marked or labelled as another. */
  const allOn = (version: string) =>
    waitFor(
      `every tile on ${version}`,
      async () => {
        const s = await status();
        const shown = await tiles();
        const ids = s.instances.map((i) => i.id);
        return (
          ids.length >= 2 &&
          shown.length === ids.length &&
          // The label is the version alone: no "old"/"new" once no roll is under way.
          shown.every(
            (t) =>
              ids.includes(t.id) &&
              t.version === version &&
              t.other === "false" &&
              t.label === version.slice(0, 9),
          ) &&
          s.instances.every((i) => i.version === version)
        );
      },
      60_000,
    );

  before(async () => {
    await upDetached(stateDir, { cwd: dir, timeoutMs: 90_000 });
    const s = await status();
    assert.ok(s.dashboard, "status --json gives the dashboard's URL");
    primary = s.region;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: narrowestWidthPx, height: 1000 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(s.dashboard);
    await page.waitForSelector('#connection[data-state="live"]', { timeout: 30_000 });
  });

  after(async () => {
    await browser?.close();
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("shows the stack's version, each region's and each instance's, as status gives them, readable at the narrowest width", async () => {
    const s = await status();
    assert.ok(s.version, "status carries the stack's version");
    await allOn(s.version);
    for (const t of await tiles()) assert.equal(t.label, s.version.slice(0, 9), `${t.id}'s label`);
    assert.equal(await page.textContent("#stack-version"), `version ${s.version.slice(0, 9)}`);
    for (const region of s.regions) {
      if (region.version === undefined) continue;
      assert.equal(
        await page.getAttribute(
          `[data-region="${region.name}"] [data-region-version]`,
          "data-region-version",
        ),
        region.version,
        region.name,
      );
    }
    assert.equal(await rollLine(), undefined, "no roll yet");
    // Readable: each label at least 11 px, inside its tile, its text not cut off.
    const boxes = await page.$$eval(".tile .version", (labels) =>
      labels.map((l) => {
        const tile = (l.closest(".tile") as HTMLElement).getBoundingClientRect();
        const box = l.getBoundingClientRect();
        return {
          fontPx: Number.parseFloat(getComputedStyle(l).fontSize),
          inside: box.left >= tile.left && box.right <= tile.right,
          clipped: l.scrollWidth > l.clientWidth + 1,
        };
      }),
    );
    assert.ok(boxes.length >= 2);
    for (const b of boxes) assert.deepEqual(b, { ...b, inside: true, clipped: false }, JSON.stringify(b));
    assert.ok(
      boxes.every((b) => b.fontPx >= 11),
      JSON.stringify(boxes),
    );
  });

  it("`stayup roll --set`: every instance's label changes to the new version, the region's too, the roll shown completed", async () => {
    const found = await status();
    assert.ok(found.version);
    const before = await tiles();
    assert.ok(before.every((t) => t.label === found.version?.slice(0, 9)));
    const rolled = await runCli(["roll", "--set", "DASHBOARD_VERSIONS_TEST=1", "--state-dir", stateDir], {
      timeoutMs: 240_000,
    });
    assert.equal(rolled.code, 0, rolled.stderr);
    const now = await status();
    assert.ok(now.version && now.version !== found.version, "a new version");
    await allOn(now.version);
    const after = await tiles();
    for (const t of after) {
      assert.equal(t.label, now.version.slice(0, 9), `${t.id}'s label`);
      assert.ok(!before.some((b) => b.id === t.id), `${t.id} is a new instance`);
    }
    assert.equal(
      await page.getAttribute(`[data-region="${primary}"] [data-region-version]`, "data-region-version"),
      now.version,
    );
    assert.equal(await page.textContent("#stack-version"), `version ${now.version.slice(0, 9)}`);
    const line = await waitFor("the roll shown as completed", async () => {
      const l = await rollLine();
      return l?.phase === "completed" ? l : undefined;
    });
    assert.match(
      line.text,
      new RegExp(
        `^rolled to ${now.version.slice(0, 9)} at \\d\\d:\\d\\d:\\d\\d: \\d+ instance\\(s\\) replaced`,
      ),
    );
  });

  it("a broken version: its instance labelled new beside the old ones, marked, while it rolls; rolled back, the reason shown, every tile on the version found", async () => {
    const found = await status();
    assert.ok(found.version);
    await record();
    // Never healthy: the roll holds old and new side by side until its 10 s are up, then rolls back.
    const rolling = runCli(["roll", "--set", "STAYUP_BROKEN=unhealthy", "--state-dir", stateDir], {
      timeoutMs: 240_000,
    });
    const isMixed = (x: Snapshot) =>
      x.roll === "rolling" &&
      x.regionVersion !== found.version &&
      x.tiles.some((t) => t.version === found.version && t.other === "true" && t.role === "old") &&
      x.tiles.some((t) => t.version === x.regionVersion && t.other === "false" && t.role === "new");
    // Seen live (kept as a screenshot), and in the renders recorded: old and new side by side.
    await waitFor(
      "old and new side by side on the page",
      async () => (await recorded()).some(isMixed),
      60_000,
    )
      .then(() => page.screenshot({ path: artifactPath("dashboard-roll-under-way.png"), fullPage: true }))
      .catch(() => undefined);
    const rolled = await rolling;
    assert.equal(rolled.code, 1, "a rolled-back roll exits 1");
    await allOn(found.version);
    const line = await waitFor("the rollback shown as over", async () => {
      const l = await rollLine();
      return l?.phase === "rolled-back" ? l : undefined;
    });
    assert.equal(line.from, found.version);
    assert.match(
      line.text,
      /^rolled back v-\w+ → v-\w+ \(at [\d:]+\): new instance i-\w+ not healthy within 10 s$/,
    );
    const snapshots = await recorded();
    const mixed = snapshots.find(isMixed);
    assert.ok(mixed, `old and new side by side, the old marked: ${JSON.stringify(snapshots.slice(0, 20))}`);
    await page.screenshot({ path: artifactPath("dashboard-roll-rolled-back.png"), fullPage: true });
  });

  it("a roll stopped: shown rolling, then rolled back with its reason as text (user data, escaped), every tile on the version found", async () => {
    const found = await status();
    assert.ok(found.version);
    const client = StackClient.require(stateDir);
    const reason = `<img src=x onerror="document.title='pwned'"> & "quotes"`;
    // A version that never turns healthy: the roll cannot end by itself before the stop.
    const roll = client.roll({ STAYUP_BROKEN: "unhealthy" }, { id: "dashboard-stop" });
    await waitFor(
      "the roll shown under way",
      async () => {
        const l = await rollLine();
        return (l?.phase === "rolling" && l.from === found.version) || undefined;
      },
      60_000,
    );
    const stopped = await client.stopRoll({ id: "dashboard-stop", reason });
    assert.ok(stopped?.stopped, `stopped by us: ${JSON.stringify(stopped)}`);
    await roll;
    await allOn(found.version);
    const line = await waitFor("the rollback shown as over", async () => {
      const l = await rollLine();
      return l?.phase === "rolled-back" ? l : undefined;
    });
    assert.equal(line.from, found.version);
    assert.ok(line.text.startsWith("rolled back "), line.text);
    assert.ok(line.text.endsWith(`: stopped: ${reason}`), `the reason, as text: ${line.text}`);
    assert.equal(await page.locator("#regions img, #event-list img").count(), 0, "no element made of it");
    assert.notEqual(await page.title(), "pwned");
    const events = await page.$$eval("#event-list li", (items) =>
      items.map((li) => li.getAttribute("data-type")),
    );
    for (const type of ["roll.started", "roll.rolled-back"]) assert.ok(events.includes(type), type);
    await page.screenshot({ path: artifactPath("dashboard-roll-stopped.png"), fullPage: true });
    assert.deepEqual(pageErrors, []);
  });
});
