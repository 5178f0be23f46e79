import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import type { DrillReport } from "../src/drills/report.ts";
import { sparkline, TimelineRecorder } from "../src/drills/timeline.ts";
import { artifactPath, launchChromium } from "./browser.ts";
import { configPath, runCli, tempDir } from "./helpers.ts";

describe("drill timeline buckets", () => {
  it("puts each request in the 100 ms bucket of its completion, with outcome, latency and instance", () => {
    const t0 = 1_000_000;
    const timeline = new TimelineRecorder(t0, 100);
    timeline.record({ ok: true, latencyMs: 4, instanceId: "i-a" }, t0 + 10);
    timeline.record({ ok: true, latencyMs: 8, instanceId: "i-b" }, t0 + 99);
    timeline.record({ ok: false, latencyMs: 1, reason: "ECONNREFUSED" }, t0 + 250);
    timeline.record({ ok: true, latencyMs: 20, instanceId: "i-b" }, t0 + 260);
    timeline.record({ ok: true, latencyMs: 6, instanceId: "i-b" }, t0 + 480);
    timeline.mark("fault", "kill", t0 + 150);
    timeline.mark("recovery", "back", t0 + 450);
    const built = timeline.build(0.3, t0 + 500);
    assert.equal(built.buckets.length, 5);
    assert.deepEqual(built.buckets[0]?.servedBy, { "i-a": 1, "i-b": 1 });
    assert.deepEqual(built.buckets[0]?.latencyMs, { p50: 4, p95: 8, p99: 8, max: 8 });
    assert.equal(built.buckets[1]?.ok, 0);
    assert.deepEqual(built.buckets[2]?.failures, { ECONNREFUSED: 1 });
    assert.equal(built.fault?.seconds, 0.15);
    assert.equal(built.fault?.at, new Date(t0 + 150).toISOString());
    assert.deepEqual(
      built.recoveries.map((r) => r.seconds),
      [0.45],
    );
    assert.deepEqual(built.impactWindow, { fromSeconds: 0.15, toSeconds: 0.45 });
    // One column per bucket: two successes, the fault, a failure, nothing, the recovery.
    assert.equal(sparkline(built), "█↯×▁✓");
  });
});

/** A real drill against a temporary stack, its HTML report opened from disk in Chromium. */
describe("drill report in a browser", { timeout: 180_000 }, () => {
  const dir = tempDir();
  const htmlFile = path.join(dir, "kill.html");
  let report: DrillReport;
  let browser: Browser;

  before(async () => {
    const drill = await runCli(
      ["drill", "kill-instance", "--rate", "100", "--report", htmlFile, "--config", configPath],
      { cwd: dir, timeoutMs: 120_000 },
    );
    assert.equal(drill.code, 0, drill.stderr + drill.stdout);
    assert.match(drill.stdout, /timeline\s+\S*↯\S*/, "the terminal summary has the run on one line");
    assert.match(drill.stderr, new RegExp(`report: ${htmlFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    report = JSON.parse(readFileSync(path.join(dir, "kill.json"), "utf8")) as DrillReport;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  it("the JSON carries the fault time and the recovery times", () => {
    const fault = report.timeline.fault;
    assert.ok(fault, "fault mark");
    assert.ok(report.timeline.recoveries.length >= 1, "a recovery mark");
    assert.equal(report.recoverySeconds !== null, true);
    const recovery = report.timeline.recoveries.at(-1);
    assert.ok(recovery);
    assert.ok(Math.abs(recovery.seconds - fault.seconds - (report.recoverySeconds ?? 0)) < 0.002);
    assert.ok(report.timeline.buckets.length > 20, "100 ms buckets over the run");
    assert.equal(
      report.timeline.buckets.reduce((s, b) => s + b.ok + b.failed, 0),
      report.requests,
      "every request is in a bucket",
    );
  });

  it("opened from disk, the report shows the fault and recovery markers at the JSON's times", async () => {
    const page = await browser.newPage({ viewport: { width: 1120, height: 900 } });
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    const errors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(pathToFileURL(htmlFile).href);

    const geometry = await page.evaluate(() => {
      const plot = document.querySelector("#timeline [data-plot]") as SVGRectElement;
      const box = plot.getBoundingClientRect();
      const marks = [...document.querySelectorAll("#timeline .mark")].map((g) => {
        const line = (g.querySelector("line") as SVGLineElement).getBoundingClientRect();
        return {
          kind: g.getAttribute("data-kind"),
          x: line.left + line.width / 2,
          label: g.querySelector("text")?.textContent ?? "",
        };
      });
      const embedded = document.getElementById("stayup-report")?.textContent ?? "";
      return {
        left: box.left,
        width: box.width,
        marks,
        embedded,
        verdict: document.getElementById("verdict")?.textContent,
      };
    });
    const duration = report.timeline.durationSeconds;
    const xOf = (seconds: number) => geometry.left + (seconds / duration) * geometry.width;
    const fault = report.timeline.fault;
    assert.ok(fault);
    const faultMarks = geometry.marks.filter((m) => m.kind === "fault");
    assert.equal(faultMarks.length, 1);
    assert.ok(
      Math.abs((faultMarks[0]?.x ?? 0) - xOf(fault.seconds)) < 2,
      `fault marker at ${fault.seconds} s`,
    );
    assert.match(faultMarks[0]?.label ?? "", new RegExp(`\\(${fault.seconds.toFixed(2)} s\\)`));
    const recoveryMarks = geometry.marks.filter((m) => m.kind === "recovery");
    assert.equal(recoveryMarks.length, report.timeline.recoveries.length);
    report.timeline.recoveries.forEach((r, i) => {
      assert.ok(
        Math.abs((recoveryMarks[i]?.x ?? 0) - xOf(r.seconds)) < 2,
        `recovery marker at ${r.seconds} s`,
      );
      assert.match(recoveryMarks[i]?.label ?? "", new RegExp(`\\(${r.seconds.toFixed(2)} s\\)`));
    });
    assert.ok(
      recoveryMarks.every((m) => m.x > (faultMarks[0]?.x ?? 0)),
      "recovery after the fault",
    );
    assert.deepEqual(JSON.parse(geometry.embedded), report, "the raw JSON is embedded");
    assert.equal(geometry.verdict, "PASSED");
    await page.screenshot({ path: artifactPath("drill-report.png"), fullPage: true });
    assert.deepEqual(
      requests.filter((u) => !u.startsWith("file://")),
      [],
      "nothing but the file itself is loaded",
    );
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("stayup report renders the saved JSON to the same HTML again", async () => {
    const out = path.join(dir, "again.html");
    const again = await runCli(["report", path.join(dir, "kill.json"), "--out", out]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(readFileSync(out, "utf8"), readFileSync(htmlFile, "utf8"));
  });

  it("stayup report names what is wrong with a file that is not a report", async () => {
    const bad = path.join(dir, "bad.json");
    await import("node:fs").then((fs) => fs.writeFileSync(bad, JSON.stringify({ drill: "x" })));
    const res = await runCli(["report", bad]);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /is not a stayup drill report \(missing: requests, failed, timeline, events, verdict\)/,
    );
  });
});
