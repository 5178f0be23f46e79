import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { concludeVerdict, defineDrill, isDefinedDrill, missingMarks } from "../src/drills/module.ts";
import { drills } from "../src/drills/registry.ts";
import { renderReportHtml } from "../src/drills/report-html.ts";
import type { DrillReport } from "../src/drills/report.ts";
import { sparkline, TimelineRecorder } from "../src/drills/timeline.ts";
import { artifactPath, launchChromium } from "./browser.ts";
import { repoRoot, runCli, tempDir } from "./helpers.ts";

const oneRegionConfig = path.join(repoRoot, "test/fixtures/one-region.config.ts");

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

/** A report that passes every shared target, with the marks given. */
function reportWith(
  marks: (timeline: TimelineRecorder) => void,
  recoverySeconds: number | null = 1,
): DrillReport {
  const t0 = 2_000_000;
  const timeline = new TimelineRecorder(t0, 100);
  timeline.record({ ok: true, latencyMs: 3, instanceId: "i-a" }, t0 + 50);
  marks(timeline);
  return {
    drill: "fake",
    requests: 1,
    failed: 0,
    recoverySeconds,
    counterContinuous: true,
    rate: 10,
    durationSeconds: 3,
    failures: {},
    servedBy: { "i-a": 1 },
    counter: { first: 1, last: 1 },
    counterViolations: [],
    timeline: timeline.build(recoverySeconds, t0 + 3000),
    events: [],
    verdict: { passed: true, targets: [] },
  };
}

describe("the report's event log", () => {
  it("describes each event as the terminal does, and an event of a type it does not know by its fields", () => {
    const report = reportWith((t) => t.mark("fault", "fault", 2_000_100));
    const at = new Date(2_000_200).toISOString();
    report.events = [
      {
        type: "target.ejected",
        instanceId: "i-0a1",
        az: "eu-west-3a",
        reason: "5 consecutive 5xx answers",
        forMs: 5000,
        ejections: 1,
        time: at,
        seq: 1,
        region: "eu-west-3",
      },
      { type: "roll.started", fromVersion: "v1", toVersion: "v2", instances: 3, time: at, seq: 2 },
      // A saved report from a newer stayup: its event's fields, not "undefined".
      { type: "target.drained", instanceId: "i-0a1", connections: 3, time: at, seq: 3 } as never,
    ];
    const details = [...renderReportHtml(report).matchAll(/<tr class="event">.*?<\/tr>/g)].map(([row]) =>
      row.replace(/^.*<td>(.*)<\/td><\/tr>$/, "$1"),
    );
    assert.deepEqual(details, [
      "[eu-west-3] i-0a1 in eu-west-3a: 5 consecutive 5xx answers; ejected for 5000 ms (ejection 1 of this target)",
      "v1 → v2, 3 instances",
      "instanceId=i-0a1 connections=3",
    ]);
  });
});

describe("every drill marks its fault and its recoveries", () => {
  it("every drill in the registry is made by defineDrill, which checks the marks", () => {
    assert.ok(drills.length >= 10);
    for (const drill of drills) assert.ok(isDefinedDrill(drill), `${drill.name} is not made by defineDrill`);
  });

  it("a report without a fault marker, or recovered without a recovery marker, fails any registered drill", () => {
    const noFault = reportWith((t) => t.mark("recovery", "back", 2_001_000));
    const noRecovery = reportWith((t) => t.mark("fault", "broke", 2_000_500));
    const recoveryFirst = reportWith((t) => {
      t.mark("recovery", "back", 2_000_200);
      t.mark("fault", "broke", 2_000_500);
    });
    assert.equal(missingMarks(noFault)?.actual, "no fault marker");
    assert.equal(missingMarks(noRecovery)?.actual, "recovered, but no recovery marker");
    assert.equal(missingMarks(recoveryFirst)?.actual, "a recovery marker before the fault");
    for (const drill of drills) {
      for (const report of [noFault, noRecovery, recoveryFirst])
        assert.equal(drill.passed(report), false, `${drill.name} passes a report missing its markers`);
    }
    // Not recovered: the fault marker alone is complete (the verdict fails on recovery instead).
    assert.equal(missingMarks(reportWith((t) => t.mark("fault", "broke", 2_000_500), null)), null);
  });

  it("a drill whose run forgets its markers reports a missed target, wherever it runs", async () => {
    const forgetful = defineDrill<Record<string, never>>({
      name: "forgetful",
      description: "marks nothing",
      topologies: { "load-balanced": true, "single-instance": true, ecs: true },
      run: () => Promise.resolve(reportWith(() => undefined)),
      details: () => [],
      passed: (r) => r.failed === 0,
    });
    const report = concludeVerdict(
      forgetful,
      await forgetful.run({
        client: undefined as never,
        stack: undefined as never,
        rate: 1,
        options: {},
      }),
    );
    assert.equal(report.verdict.passed, false);
    assert.deepEqual(
      report.verdict.targets.filter((t) => !t.passed).map((t) => [t.target, t.actual]),
      [["the timeline marks the fault and each recovery", "no fault marker"]],
    );
    const marked = defineDrill<Record<string, never>>({
      ...forgetful,
      run: () =>
        Promise.resolve(
          reportWith((t) => {
            t.mark("fault", "broke", 2_000_500);
            t.mark("recovery", "back", 2_001_500);
          }),
        ),
    });
    const ok = concludeVerdict(
      marked,
      await marked.run({ client: undefined as never, stack: undefined as never, rate: 1, options: {} }),
    );
    assert.equal(ok.verdict.passed, true);
    assert.deepEqual(ok.timeline.impactWindow, { fromSeconds: 0.5, toSeconds: 1.5 });
  });

  it("the impact window ends recoverySeconds after the moment recovery counts from", () => {
    const report = reportWith((t) => {
      t.mark("fault", "slow", 2_000_500);
      t.countRecoveryFrom(2_002_000);
      t.mark("recovery", "fast again", 2_002_400);
    }, 0.4);
    assert.deepEqual(report.timeline.impactWindow, { fromSeconds: 0.5, toSeconds: 2.4 });
  });
});

/**
 * Opens a drill's HTML report from disk and checks that its fault, recovery and step markers sit on
 * the timeline at the seconds its JSON gives, labelled with them, and that nothing but the file loads.
 */
async function assertMarkersAtJsonTimes(
  browser: Browser,
  htmlFile: string,
  report: DrillReport,
  screenshot: string,
) {
  await checkReportPage(browser, htmlFile, screenshot, async (page) => {
    const geometry = await page.evaluate(() => {
      const plot = document.querySelector("#timeline [data-plot]") as SVGRectElement;
      const box = plot.getBoundingClientRect();
      const impact = document.querySelector("#timeline .impact-window")?.getBoundingClientRect();
      const marks = [...document.querySelectorAll("#timeline .mark")].map((g) => {
        const line = (g.querySelector("line") as SVGLineElement).getBoundingClientRect();
        return {
          kind: g.getAttribute("data-kind"),
          at: g.getAttribute("data-at"),
          x: line.left + line.width / 2,
          label: g.querySelector("text")?.textContent ?? "",
        };
      });
      return {
        left: box.left,
        width: box.width,
        marks,
        impact: impact ? { left: impact.left, right: impact.right } : null,
        embedded: document.getElementById("stayup-report")?.textContent ?? "",
        eventDetails: [...document.querySelectorAll("#events tr.event td:last-child")].map(
          (td) => td.textContent ?? "",
        ),
      };
    });
    assert.equal(geometry.eventDetails.length, report.events.length, "every event in the log");
    assert.deepEqual(
      geometry.eventDetails.filter((d) => d.includes("undefined")),
      [],
      "every event described",
    );
    const t = report.timeline;
    const xOf = (seconds: number) => geometry.left + (seconds / t.durationSeconds) * geometry.width;
    assert.ok(t.fault, "the JSON has a fault");
    for (const [kind, expected] of [
      ["fault", [t.fault]],
      ["recovery", t.recoveries],
      ["step", t.steps],
    ] as const) {
      const shown = geometry.marks.filter((m) => m.kind === kind);
      assert.equal(shown.length, expected.length, `${kind} markers`);
      expected.forEach((m, i) => {
        const mark = shown[i];
        assert.ok(mark);
        assert.equal(mark.at, m.at, `${kind} marker ${i} is ${m.label}`);
        assert.ok(Math.abs(mark.x - xOf(m.seconds)) < 2, `${kind} marker "${m.label}" at ${m.seconds} s`);
        assert.ok(
          mark.label.includes(m.label) && mark.label.includes(`(${m.seconds.toFixed(2)} s)`),
          mark.label,
        );
      });
    }
    const faultX = geometry.marks.find((m) => m.kind === "fault")?.x ?? 0;
    assert.ok(geometry.marks.filter((m) => m.kind === "recovery").every((m) => m.x >= faultX - 0.5));
    assert.ok(t.impactWindow && geometry.impact, "the impact window is shaded");
    assert.ok(Math.abs(geometry.impact.left - xOf(t.impactWindow.fromSeconds)) < 2);
    assert.ok(Math.abs(geometry.impact.right - xOf(t.impactWindow.toSeconds)) < 2);
    assert.deepEqual(JSON.parse(geometry.embedded), report, "the raw JSON is embedded");
  });
}

/**
 * Opens a drill's HTML report from disk, runs `check` on the page, keeps a screenshot of it, and
 * checks that nothing but the file itself loaded and that the page logged no error.
 */
async function checkReportPage(
  browser: Browser,
  htmlFile: string,
  screenshot: string,
  check: (page: Page) => Promise<void>,
) {
  const page = await browser.newPage({ viewport: { width: 1120, height: 900 } });
  const requests: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(pathToFileURL(htmlFile).href);
  await check(page);
  await page.screenshot({ path: artifactPath(screenshot), fullPage: true });
  assert.deepEqual(
    requests.filter((u) => !u.startsWith("file://")),
    [],
    "nothing but the file itself is loaded",
  );
  assert.deepEqual(errors, []);
  await page.close();
}

/**
 * The drills below on one running stack, their HTML reports opened from disk in one Chromium. The
 * stack is the repository's description with its primary region only: no drill here touches the
 * secondary region (kill-instance, failing-instance, rolling-deploy), and one Redis group starts
 * instead of two. A drill on a temporary stack is local-stack.test.ts's "drill without a running stack".
 */
describe("drill reports in a browser, on one running stack", { timeout: 480_000 }, () => {
  const stackDir = tempDir();
  const stateDir = path.join(stackDir, ".stayup");
  let browser: Browser;

  before(async () => {
    const up = await runCli(
      [
        ...["up", "--detach", "--config", oneRegionConfig, "--state-dir", stateDir],
        ...["--port", "0", "--redis-port", "0", "--dns-port", "0"],
      ],
      { cwd: stackDir, timeoutMs: 150_000 },
    );
    assert.equal(up.code, 0, up.stderr + up.stdout);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await runCli(["down", "--state-dir", stateDir]);
  });

  describe("drill report in a browser", () => {
    const dir = tempDir();
    const htmlFile = path.join(dir, "kill.html");
    let report: DrillReport;

    before(async () => {
      const drill = await runCli(
        [
          ...["drill", "kill-instance", "--rate", "100", "--report", htmlFile],
          ...["--state-dir", stateDir, "--config", oneRegionConfig],
        ],
        { cwd: dir, timeoutMs: 120_000 },
      );
      assert.equal(drill.code, 0, drill.stderr + drill.stdout);
      assert.match(drill.stdout, /timeline\s+\S*↯\S*/, "the terminal summary has the run on one line");
      assert.match(drill.stderr, new RegExp(`report: ${htmlFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
      report = JSON.parse(readFileSync(path.join(dir, "kill.json"), "utf8")) as DrillReport;
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
      await checkReportPage(browser, htmlFile, "drill-report.png", async (page) => {
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
      });
    });

    it("its markers, steps and impact window sit where the JSON says", async () => {
      await assertMarkersAtJsonTimes(browser, htmlFile, report, "drill-report-kill.png");
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

  describe("gray-fault and rolling-deploy reports in a browser", () => {
    const dir = tempDir();
    const drill = async (name: string, extra: string[] = []) => {
      const html = path.join(dir, `${name}.html`);
      const res = await runCli(
        [
          "drill",
          name,
          "--rate",
          "100",
          "--report",
          html,
          "--state-dir",
          stateDir,
          "--config",
          oneRegionConfig,
          ...extra,
        ],
        { cwd: dir, timeoutMs: 150_000 },
      );
      assert.equal(res.code, 0, res.stderr + res.stdout);
      return {
        html,
        report: JSON.parse(readFileSync(html.replace(/\.html$/, ".json"), "utf8")) as DrillReport,
      };
    };

    it("failing-instance: the fault, the ejection and the return, at the JSON's times", async () => {
      const { html, report } = await drill("failing-instance", ["--fault-seconds", "4"]);
      const t = report.timeline;
      const victim = (report.victim as { id: string }).id;
      assert.match(t.fault?.label ?? "", new RegExp(`${victim} .*answers 500`));
      assert.deepEqual(
        t.recoveries.map((r) => r.label.replace(/ \(.*\)$/, "")),
        [`${victim} ejected`, `${victim} back in rotation`],
      );
      assert.deepEqual(
        t.steps.map((s) => s.label),
        ["fault cleared"],
      );
      // The markers are the events' own times: the ejection is the report's recovery.
      const ejected = report.events.find((e) => e.type === "target.ejected" && e.instanceId === victim);
      assert.equal(t.recoveries[0]?.at, ejected?.time);
      assert.ok(
        Math.abs((t.recoveries[0]?.seconds ?? 0) - (t.fault?.seconds ?? 0) - (report.recoverySeconds ?? -1)) <
          0.002,
      );
      await assertMarkersAtJsonTimes(browser, html, report, "drill-report-failing-instance.png");
    });

    it("rolling-deploy: the roll, each new instance in rotation and its completion, at the JSON's times", async () => {
      const { html, report } = await drill("rolling-deploy");
      const t = report.timeline;
      assert.match(t.fault?.label ?? "", /roll to a new version started/);
      const inRotation = t.recoveries.filter((r) => / in rotation$/.test(r.label));
      assert.ok(inRotation.length >= (report.instancesReplaced as number), "each replacement marked");
      const completed = report.events.find((e) => e.type === "roll.completed");
      assert.ok(completed);
      assert.equal(t.recoveries.at(-1)?.at, completed.time);
      assert.match(t.recoveries.at(-1)?.label ?? "", /roll completed: \d+ replaced/);
      for (const r of inRotation) {
        const id = r.label.replace(/ in rotation$/, "");
        const healthy = report.events.find((e) => e.type === "target.healthy" && e.instanceId === id);
        assert.equal(r.at, healthy?.time, `${id}'s marker at its target.healthy event`);
      }
      await assertMarkersAtJsonTimes(browser, html, report, "drill-report-rolling-deploy.png");
    });
  });
});
