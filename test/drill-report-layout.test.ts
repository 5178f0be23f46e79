/**
 * Issue 25 item 7, the drill report's page in Debian's chromium: a region outage's many close
 * marks each get a label clear of every other (real bounding boxes, not the estimate that placed
 * them), the key figures are a table of words (no raw JSON), and every table column has a header.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { renderReportHtml } from "../src/drills/report-html.ts";
import type { DrillReport } from "../src/drills/report.ts";
import { TimelineRecorder } from "../src/drills/timeline.ts";
import { artifactPath, launchChromium } from "./browser.ts";
import { tempDir } from "./helpers.ts";

/** A region-outage-like report: the fault, then five recoveries within half a second, and a failback. */
function regionOutageReport(): DrillReport {
  const t0 = 5_000_000;
  const timeline = new TimelineRecorder(t0, 100);
  for (let ms = 0; ms < 20_000; ms += 50) {
    const down = ms >= 3000 && ms < 10_500;
    timeline.record(
      {
        ok: !down,
        latencyMs: 3,
        instanceId: down ? undefined : "i-a",
        ...(down ? { reason: "ECONNREFUSED" } : {}),
      } as never,
      t0 + ms,
    );
  }
  timeline.mark("fault", "eu-west-3 down", t0 + 3000);
  timeline.mark("recovery", "alarm: failover to us-east-1", t0 + 10_480);
  timeline.mark("recovery", "detection: the primary failed its health check", t0 + 10_470);
  timeline.mark("recovery", "DNS answers us-east-1", t0 + 10_470);
  timeline.mark("recovery", "us-east-1 serving with 2", t0 + 10_900);
  timeline.mark("step", "eu-west-3 restored", t0 + 14_000);
  timeline.mark("recovery", "failback to eu-west-3", t0 + 16_100);
  timeline.mark("recovery", "us-east-1 back to standby", t0 + 17_300);
  return {
    drill: "region-outage",
    requests: 400,
    failed: 150,
    recoverySeconds: 7.9,
    counterContinuous: true,
    rate: 20,
    durationSeconds: 20,
    failures: { ECONNREFUSED: 150 },
    servedBy: { "i-a": 250 },
    counter: { first: 1, last: 250 },
    counterViolations: [],
    timeline: timeline.build(7.9, t0 + 20_000),
    events: [],
    verdict: {
      passed: true,
      targets: [{ target: "the alarm started the secondary", passed: true, actual: "yes" }],
    },
    // Nested figures, as region-outage reports them.
    phases: {
      detectionSeconds: 7.47,
      alarmSeconds: 7.48,
      standbyStartSeconds: 7.5,
      dnsSeconds: 7.47,
      clientsServedSeconds: 7.9,
    },
    failureWindows: [{ fromSeconds: 3, toSeconds: 10.5, failed: 150 }],
    countsByRegion: [
      { phase: "primary", first: 1, last: 60, answers: 60 },
      { phase: "secondary", first: 61, last: 200, answers: 140 },
    ],
  } as DrillReport;
}

describe("drill report layout in a browser", { timeout: 120_000 }, () => {
  let browser: Browser;
  let page: Page;

  before(async () => {
    const file = path.join(tempDir(), "region-outage.html");
    writeFileSync(file, renderReportHtml(regionOutageReport()));
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1120, height: 900 } });
    await page.goto(pathToFileURL(file).href);
  });
  after(async () => {
    await page
      ?.screenshot({ path: artifactPath("drill-report-layout.png"), fullPage: true })
      .catch(() => undefined);
    await browser?.close();
  });

  it("no mark label overlaps another: a recovery label close after the fault's sits below it", async () => {
    const boxes = await page.$$eval("#timeline .mark-label", (labels) =>
      labels.map((l) => {
        const b = l.getBoundingClientRect();
        return { text: l.textContent ?? "", left: b.left, right: b.right, top: b.top, bottom: b.bottom };
      }),
    );
    assert.equal(boxes.length, 8, "every mark labelled");
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, b] = [boxes[i], boxes[j]] as [(typeof boxes)[0], (typeof boxes)[0]];
        const apart = a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top;
        assert.ok(apart, `"${a.text}" overlaps "${b.text}": ${JSON.stringify([a, b])}`);
      }
    }
  });

  it("the key figures are a table of words: a header, two cells a row, no raw JSON", async () => {
    const figures = await page.$$eval("#figures tr", (rows) =>
      rows.map((r) => ({
        headers: [...r.querySelectorAll("th")].map((c) => c.textContent ?? ""),
        cells: [...r.querySelectorAll("td")].map((c) => c.textContent ?? ""),
      })),
    );
    assert.deepEqual(figures[0]?.headers, ["figure", "this run"]);
    const rows = figures.slice(1);
    assert.ok(rows.length >= 8, JSON.stringify(rows));
    for (const r of rows) {
      assert.equal(r.cells.length, 2, JSON.stringify(r));
      assert.doesNotMatch(r.cells[1] ?? "", /^[[{]|":/, `a readable value: ${r.cells[1]}`);
    }
  });

  it("every column of every table has a header", async () => {
    const tables = await page.$$eval("table", (ts) =>
      ts.map((t) => ({
        id: t.id,
        headers: t.querySelectorAll("tr:first-child th").length,
        widest: Math.max(
          0,
          ...[...t.querySelectorAll("tr")]
            .slice(1)
            .map((r) =>
              [...r.querySelectorAll("td")].reduce(
                (n, c) => n + ((c as HTMLTableCellElement).colSpan || 1),
                0,
              ),
            ),
        ),
      })),
    );
    assert.ok(tables.length >= 4, JSON.stringify(tables));
    for (const t of tables) assert.ok(t.headers >= t.widest && t.headers > 0, JSON.stringify(t));
  });
});
