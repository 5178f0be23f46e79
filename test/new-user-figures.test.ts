import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { estimateCost } from "../src/aws/cost/estimate.ts";
import { tradeOffs } from "../src/aws/cost/trade-offs.ts";
import { DrillRun } from "../src/drills/harness.ts";
import { whyFailedOverAgain, whyNotPromoted } from "../src/drills/redis-failover.ts";
import { regionOutage } from "../src/drills/region-outage.ts";
import { markLabelWidth, renderReportHtml } from "../src/drills/report-html.ts";
import { basicTargets, type DrillReport, formatReport, withVerdict } from "../src/drills/report.ts";
import { TimelineRecorder } from "../src/drills/timeline.ts";
import { SteadyTraffic } from "../src/drills/traffic.ts";
import type { StackClient } from "../src/local/control-plane/client.ts";
import type { StackEvent, TimedStackEvent } from "../src/local/events/bus.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { description, inHostedZone } from "./aws-helpers.ts";
import { configPath, runCli, tempDir } from "./helpers.ts";

/** Issue 25, item 6: figures that disagreed with each other or with what is rendered. */

/** A stand-in stack client for DrillRun: the counter at `url`, and no stack event (the events end when the run stops reading). */
const counterClient = (url: string) =>
  ({
    state: { listener: url },
    status: async () => ({ service: { service: "counter", trafficPath: "/" } }) as unknown as StackStatus,
    events: async function* (signal: AbortSignal) {
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      yield* [];
    },
  }) as unknown as StackClient;

describe("figures a new user reads", { timeout: 120_000 }, () => {
  it("cpu-spike's requests add up: the steady traffic and the CPU-heavy load, each with its rate", () => {
    const t0 = 1_000_000;
    const timeline = new TimelineRecorder(t0, 100);
    timeline.record({ ok: true, latencyMs: 3, instanceId: "i-a" }, t0 + 50);
    const report: DrillReport = {
      drill: "cpu-spike",
      requests: 4365,
      failed: 0,
      recoverySeconds: 3.2,
      counterContinuous: true,
      rate: 200,
      durationSeconds: 19.9,
      failures: {},
      servedBy: { "i-a": 4365 },
      counter: { first: 1, last: 4365 },
      counterViolations: [],
      timeline: timeline.build(0, t0 + 19_900),
      events: [],
      verdict: { passed: true, targets: [] },
      load: { rate: 120, cpuMsPerRequest: 20, requests: 385, failed: 0, durationSeconds: 3.2 },
    };
    const line = "4365 (3980 steady at 200/s for 19.9 s, plus 385 CPU-heavy at 120/s for 3.2 s)";
    assert.match(formatReport(report), new RegExp(`requests sent +${line.replace(/[()/.]/g, "\\$&")}`));
    assert.ok(renderReportHtml(report).includes(line));
    // Without extra traffic the line is as before.
    delete report.load;
    report.requests = 3980;
    assert.match(formatReport(report), /requests sent +3980 \(200\/s for 19\.9 s\)$/m);
  });

  it("traffic's duration is how long it sent, not how long its last answers took (cpu-spike's load line)", async () => {
    // A server that holds every answer until told: the answers still in flight when the traffic
    // stops come 1.5 s later. "N sent at R/s for T s" must count T up to the stop, not to them.
    const held: ServerResponse[] = [];
    let released = false;
    // Once released, every answer at once: requests queued behind the held ones arrive after.
    const server = createServer((_req, res) => void (released ? res.end('{"count":1}') : held.push(res)));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const traffic = new SteadyTraffic(`http://127.0.0.1:${port}`, {
      rate: 50,
      maxDurationMs: 60_000,
      maxRequests: 10_000,
      consistency: "none",
    });
    try {
      const startedBefore = Date.now();
      traffic.start();
      while (held.length < 5) await new Promise((r) => setTimeout(r, 20));
      const stopping = traffic.stop();
      const stopCalledBy = Date.now();
      await new Promise((r) => setTimeout(r, 1500));
      released = true;
      for (const res of held) res.end('{"count":1}');
      const result = await stopping;
      assert.ok(result.requests >= 5 && result.failed === 0, JSON.stringify(result.failures));
      assert.ok(
        result.durationSeconds * 1000 <= stopCalledBy - startedBefore,
        `${result.durationSeconds} s: sending stopped within ${(stopCalledBy - startedBefore) / 1000} s of the start`,
      );
    } finally {
      for (const res of held) if (!res.writableEnded) res.end();
      server.close();
    }
  });

  it("region-outage's detection and the threshold beside it agree: called down within 8 s, here at 7.2 s", () => {
    const report = {
      outageSeconds: 9.27,
      resolvedAddresses: ["127.0.0.1", "127.0.0.2", "127.0.0.1"],
      notifications: [],
      phases: {
        detectionSeconds: 7.176,
        alarmSeconds: 7.176,
        standbyStartSeconds: 7.254,
        dnsSeconds: 7.176,
        clientsServedSeconds: 9.718,
      },
      regionDetectionSeconds: 8,
      inRegionBudgetSeconds: 6,
      crossRegion: "none",
      countWentBackBy: 0,
    } as unknown as DrillReport;
    const line = regionOutage.details(report).find((l) => l.startsWith("phases")) ?? "";
    assert.match(line, /detection 7\.2 s/);
    // 8 failed checks 1 s apart, the first possibly at once: 7 to 8 s, never "after 8 s".
    assert.doesNotMatch(line, /after 8 s/);
    assert.match(line, /called down within 8 s of failed checks/);
  });

  it("an interrupted drill's recovery is not measured, not 'NOT RECOVERED in time'", () => {
    const t0 = 1_000_000;
    const timeline = new TimelineRecorder(t0, 100);
    timeline.record({ ok: true, latencyMs: 3, instanceId: "i-a" }, t0 + 50);
    const base = {
      drill: "az-outage",
      requests: 322,
      failed: 0,
      recoverySeconds: null,
      counterContinuous: true,
      rate: 200,
      durationSeconds: 1.6,
      failures: {},
      servedBy: { "i-a": 322 },
      counter: { first: 1, last: 322 },
      counterViolations: [],
      timeline: timeline.build(null, t0 + 1600),
      events: [],
      verdict: { passed: false, targets: [] },
    } satisfies DrillReport;
    const ranToEnd = {
      target: "the drill ran to its end",
      passed: false,
      actual: "interrupted (SIGINT) after 1.6 s",
    };
    const interrupted = withVerdict(
      { ...base, interrupted: { reason: "SIGINT", at: new Date(t0).toISOString() } },
      [ranToEnd, ...basicTargets({ ...base, interrupted: { reason: "SIGINT" } })],
    );
    const text = formatReport(interrupted);
    assert.match(text, /recovery +not measured: interrupted \(SIGINT\) before the end/);
    assert.doesNotMatch(text, /NOT RECOVERED|not recovered/);
    assert.match(
      text,
      /verdict +FAILED; missed: the drill ran to its end \(interrupted \(SIGINT\) after 1\.6 s\)$/m,
    );
    assert.match(
      renderReportHtml(interrupted),
      /<td>recovery<\/td><td>not measured: interrupted \(SIGINT\) before the end<\/td>/,
    );
    // A run that ran to its end and did not recover: as before.
    const notRecovered = withVerdict(base, basicTargets(base));
    assert.match(formatReport(notRecovered), /recovery +NOT RECOVERED in time/);
    assert.match(
      formatReport(notRecovered),
      /missed: recovered within the drill's timeout \(not recovered\)/,
    );
  });

  it("an interrupted drill was interrupted when the signal came, not when its last answers did", async () => {
    // Answers held until told (a request to an instance being killed may take seconds): the
    // partial report says "interrupted after" the time of the interruption, beside "sent for".
    const held: ServerResponse[] = [];
    let released = false;
    // Once released, every answer at once: requests queued behind the held ones arrive after.
    const server = createServer((_req, res) => void (released ? res.end('{"count":1}') : held.push(res)));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = counterClient(url);
    try {
      const run = await DrillRun.start(client, {
        rate: 50,
        warmupMs: 0,
        cooldownMs: 0,
        recoveryTimeoutMs: 60_000,
      });
      while (held.length < 5) await new Promise((r) => setTimeout(r, 20));
      const reporting = run.interruptedReport("az-outage", "SIGINT");
      const interruptedBy = Date.now();
      await new Promise((r) => setTimeout(r, 1500));
      released = true;
      for (const res of held) res.end('{"count":1}');
      const report = await reporting;
      const at = Date.parse((report.interrupted as { at: string }).at);
      assert.ok(at <= interruptedBy, `interrupted at ${at}, asked by ${interruptedBy}`);
      const after = Number(/after ([\d.]+) s/.exec(report.verdict.targets[0]?.actual ?? "")?.[1]);
      assert.ok(
        after <= report.durationSeconds + 0.1,
        `interrupted after ${after} s, sent for ${report.durationSeconds} s`,
      );
    } finally {
      for (const res of held) if (!res.writableEnded) res.end();
      server.close();
    }
  });

  it("failure windows count from the start of the traffic, as the timeline and the failures table, in every drill", async () => {
    // A server that fails every request from 0.6 s after the traffic began: the window starts there,
    // in seconds from the start (redis-failover and cpu-spike counted from their fault before).
    let failing = false;
    const server = createServer((_req, res) => {
      if (failing) res.writeHead(503).end('{"error":"down"}');
      else res.end('{"count":1}');
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = counterClient(url);
    try {
      const run = await DrillRun.start(client, {
        rate: 50,
        warmupMs: 0,
        cooldownMs: 0,
        recoveryTimeoutMs: 60_000,
      });
      const startedAt = run.timeline.startedAt;
      await new Promise((r) => setTimeout(r, 600));
      failing = true;
      const failingFrom = (Date.now() - startedAt) / 1000;
      await new Promise((r) => setTimeout(r, 400));
      const result = await run.finish();
      assert.ok(result.failed > 0, JSON.stringify(result.failures));
      const [first] = run.failureWindows(result);
      assert.ok(first, "a window");
      assert.ok(
        first.fromSeconds >= failingFrom - 0.05 && first.fromSeconds < failingFrom + 0.5,
        `window from ${first.fromSeconds} s; failing from ${failingFrom} s after the traffic's start`,
      );
      const report = run.report("redis-failover", result, null, {
        failureWindows: run.failureWindows(result),
      });
      const firstBucket = report.timeline.buckets.find((b) => Object.keys(b.failures).length > 0);
      assert.ok(firstBucket, "a failed bucket in the timeline");
      assert.ok(
        Math.abs(firstBucket.t - first.fromSeconds) <= report.timeline.bucketMs / 1000,
        `timeline's first failure at ${firstBucket.t} s, window from ${first.fromSeconds} s`,
      );
    } finally {
      server.close();
    }
  });

  it("a drill report's key figures are words and numbers, not JSON; every column has a header", () => {
    const t0 = 1_000_000;
    const timeline = new TimelineRecorder(t0, 100);
    timeline.record({ ok: true, latencyMs: 3, instanceId: "i-a" }, t0 + 50);
    const report: DrillReport = {
      drill: "cpu-spike",
      requests: 10,
      failed: 0,
      recoverySeconds: 1,
      counterContinuous: true,
      rate: 10,
      durationSeconds: 1,
      failures: {},
      servedBy: { "i-a": 10 },
      counter: { first: 1, last: 10 },
      counterViolations: [],
      timeline: timeline.build(0, t0 + 1000),
      events: [],
      verdict: {
        passed: true,
        targets: [{ target: "no failed request", passed: true, actual: "0 failed of 10" }],
      },
      scaleInSeconds: 4.25,
      load: { rate: 120, cpuMsPerRequest: 20, requests: 385, failed: 0 },
      failureWindows: [{ fromSeconds: 1.5, toSeconds: 2 }],
      newPrimary: null,
    };
    const html = renderReportHtml(report);
    // A table (issue 25 item 7): a header, then a figure and its value per row.
    const figures = /<table class="figures" id="figures">(.*?)<\/table>/s.exec(html)?.[1] ?? "";
    assert.doesNotMatch(figures, /[{}]|&quot;/, figures);
    assert.match(figures, /<tr><th>figure<\/th><th>this run<\/th><\/tr>/);
    assert.match(figures, /<td>load cpu ms per request<\/td><td>20<\/td>/);
    assert.match(figures, /<td>failure windows<\/td><td>from seconds 1.50, to seconds 2<\/td>/);
    assert.match(figures, /<td>scale in seconds<\/td><td>4.25<\/td>/);
    assert.match(figures, /<td>new primary<\/td><td>none<\/td>/);
    const targets = /<table id="targets">(.*?)<\/table>/s.exec(html)?.[1] ?? "";
    assert.doesNotMatch(targets, /<th><\/th>/);
    assert.equal((targets.match(/<th>/g) ?? []).length, 3);
  });

  it("a drill report's mark labels do not overlap, however close the marks", () => {
    const t0 = 1_000_000;
    const timeline = new TimelineRecorder(t0, 100);
    for (let ms = 0; ms < 10_000; ms += 100)
      timeline.record({ ok: true, latencyMs: 3, instanceId: "i-a" }, t0 + ms);
    timeline.mark("fault", "SIGKILL → Redis primary in eu-west-3a", t0 + 1000);
    timeline.mark("step", "load stopped", t0 + 1100);
    timeline.mark("recovery", "replica in eu-west-3b promoted", t0 + 1200);
    timeline.mark("step", "traffic steady", t0 + 1300);
    timeline.mark("recovery", "old primary back as an in-sync replica", t0 + 1400);
    timeline.mark("recovery", "scaled back in to 2", t0 + 9000);
    const report = {
      drill: "redis-failover",
      requests: 100,
      failed: 0,
      recoverySeconds: 0.2,
      counterContinuous: true,
      rate: 10,
      durationSeconds: 10,
      failures: {},
      servedBy: { "i-a": 100 },
      counter: { first: 1, last: 100 },
      counterViolations: [],
      timeline: timeline.build(0.2, t0 + 10_000),
      events: [],
      verdict: { passed: true, targets: [] },
    } satisfies DrillReport;
    const labels = [
      ...renderReportHtml(report).matchAll(
        /<text x="([\d.]+)" text-anchor="(start|end)" y="([\d.]+)"[^>]*class="mark-label">([^<]*)<\/text>/g,
      ),
    ].map(([, x, anchor, y, text]) => {
      const width = markLabelWidth((text ?? "").replace(/&[a-z]+;/g, "x"));
      const at = Number(x);
      return {
        y: Number(y),
        from: anchor === "end" ? at - width : at,
        to: anchor === "end" ? at : at + width,
        text,
      };
    });
    assert.ok(labels.length >= 6, `${labels.length} labels`);
    for (const [i, a] of labels.entries())
      for (const b of labels.slice(i + 1))
        assert.ok(a.y !== b.y || a.to <= b.from || b.to <= a.from, `"${a.text}" and "${b.text}" overlap`);
  });

  it("deploy --help promises only the stacks a description renders (access only with a bastion)", async () => {
    const res = await runCli(["deploy", "--help"]);
    assert.equal(res.code, 0, res.stderr);
    const help = res.stdout.replace(/\s+/g, " ");
    assert.doesNotMatch(help, /network → access/);
    assert.match(help, /access, the SSH bastion, only with aws\.bastion set/);
    assert.match(help, /ecs database → repository → cluster → service/);
  });

  it("cost prices a pilot light only for the topology that renders the secondary region", async () => {
    const question = /pilot-light vs warm standby/;
    for (const topology of ["ecs", "single-instance", "load-balanced"] as const) {
      // With a hosted zone: without one, load-balanced prices the secondary as a region nothing can
      // fail over to (region-failover.md), not as a pilot light.
      const stack = await description("dev", (d) => {
        d.topology = topology;
        inHostedZone(d);
      });
      assert.ok(stack.regions.secondary, "the description has a secondary region");
      const rows = tradeOffs(stack, { ...estimateCost([]), items: [] });
      assert.equal(
        rows.some((r) => question.test(r.question)),
        topology === "load-balanced",
        `${topology}: ${rows.map((r) => r.question).join("; ")}`,
      );
    }
  });

  it("cost's nightly stop counts the ECS cluster's instances, and says ecs renders none", async () => {
    const night = /stopping dev's instances at night/;
    const instances = (what: string) => ({
      ...estimateCost([]),
      items: [
        {
          stack: "s",
          region: "eu-west-3",
          resource: "G",
          type: "AWS::AutoScaling::AutoScalingGroup",
          what,
          usdPerMonth: 17.24,
        },
      ],
    });
    const ecs = await description("dev", (d) => {
      d.topology = "ecs";
    });
    const ecsRow = tradeOffs(
      ecs,
      instances(
        "2 × t3.micro (steady state: 2 binpack tasks on 1 instance(s), at 100 % target utilisation) × 730 h",
      ),
    ).find((r) => night.test(r.question));
    assert.equal(ecsRow?.usdPerMonth, -8.62, JSON.stringify(ecsRow));
    assert.match(ecsRow?.answer ?? "", /^would save \$8\.62\/month .*renders no nightly stop for ecs/);
    const lb = await description("dev", (d) => {
      d.topology = "load-balanced";
    });
    const lbRow = tradeOffs(lb, instances("2 × t3.micro (desired capacity) × 730 h")).find((r) =>
      night.test(r.question),
    );
    assert.equal(lbRow?.usdPerMonth, -8.62, JSON.stringify(lbRow));
    assert.match(lbRow?.answer ?? "", /^saves \$8\.62\/month/);
    assert.doesNotMatch(lbRow?.answer ?? "", /no nightly stop/);
  });

  it("destroy and outputs without credentials do not say that nothing was created", async () => {
    const env = {
      PATH: process.env.PATH,
      HOME: tempDir(),
      AWS_CONFIG_FILE: "/nonexistent",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
      AWS_EC2_METADATA_DISABLED: "true",
    };
    for (const command of ["destroy", "outputs"]) {
      const res = await runCli([command, "--config", configPath], { env });
      assert.equal(res.code, 1, res.stdout);
      assert.match(res.stderr, /no usable AWS credentials/);
      assert.doesNotMatch(res.stderr, /nothing was created/);
      assert.match(res.stderr, /whether anything is deployed is unknown/);
    }
  });
});

describe("redis-failover without a promotion says why (issue 25, item 2)", () => {
  const at = (s: number) => new Date(1_000_000 + s * 1000).toISOString();
  const sentinel = (s: number, sentinelName: string, event: string): TimedStackEvent => ({
    type: "redis.sentinel",
    sentinel: sentinelName,
    event,
    detail: "master stayup 127.0.0.1 6390",
    time: at(s),
    seq: s,
  });
  it("names the first cause that applies, from the Sentinels' own events", () => {
    assert.match(whyNotPromoted([], 1_000_000).whyNotPromoted, /no Sentinel saw the primary down/);
    assert.match(
      whyNotPromoted([sentinel(1, "sentinel-1", "+sdown")], 1_000_000).whyNotPromoted,
      /did not agree .* no \+odown/,
    );
    assert.match(
      whyNotPromoted([sentinel(1, "sentinel-2", "+sdown"), sentinel(2, "sentinel-2", "+tilt")], 1_000_000)
        .whyNotPromoted,
      /sentinel-2\) entered TILT mode/,
    );
    assert.match(
      whyNotPromoted(
        [
          sentinel(1, "sentinel-1", "+sdown"),
          sentinel(2, "sentinel-1", "+odown"),
          sentinel(3, "sentinel-1", "+try-failover"),
        ],
        1_000_000,
      ).whyNotPromoted,
      /did not elect a leader .*\+try-failover from sentinel-1/,
    );
    // Events from before the kill are not this failover's.
    assert.match(
      whyNotPromoted([sentinel(-5, "sentinel-1", "+tilt")], 1_000_000).whyNotPromoted,
      /no Sentinel saw/,
    );
    // A replica seen down (one restarted) is not the primary seen down: a run beside two CPU-bound
    // processes killed a node Sentinel had just demoted, and the report blamed the quorum.
    const replicaDown = {
      ...sentinel(1, "sentinel-1", "+sdown"),
      detail: "slave 127.0.0.1:6391 127.0.0.1 6391 @ stayup 127.0.0.1 6390",
    };
    assert.match(whyNotPromoted([replicaDown], 1_000_000).whyNotPromoted, /no Sentinel saw the primary down/);
  });
});

describe("redis-failover with a second failover says why (issue 25, item 2)", () => {
  // The events of a run that lost 102 answered counts on 2026-12-07 (down-after-milliseconds 1000),
  // times in seconds after the kill.
  const killedAt = 2_000_000;
  const at = (s: number) => new Date(killedAt + s * 1000).toISOString();
  let seq = 0;
  const timed = (s: number, e: StackEvent): TimedStackEvent => ({ ...e, time: at(s), seq: ++seq });
  const failover = (s: number, fromPort: number, toPort: number, toAz: string) =>
    timed(s, { type: "redis.failover", fromPort, toPort, fromAz: "eu-west-3x", toAz });
  const sentinel = (s: number, name: string, event: string, port: number) =>
    timed(s, { type: "redis.sentinel", sentinel: name, event, detail: `master stayup 127.0.0.1 ${port}` });
  const seenDown = (s: number, latency: string[]) =>
    timed(s, {
      type: "redis.primary-seen-down",
      sentinel: "sentinel-3",
      port: 40505,
      az: "eu-west-3a",
      sentinelSaw: {
        flags: "s_down,o_down,master,failover_in_progress",
        "role-reported-time": "1050",
        "last-ok-ping-reply": "3",
        "down-after-milliseconds": "1000",
      },
      nodeLog: ["16358:M 07 Dec 2026 12:06:31.681 * Full resync requested by replica 127.0.0.1:42251"],
      latency,
    });

  it("one failover, or none: nothing added", () => {
    assert.deepEqual(whyFailedOverAgain([], killedAt), {});
    assert.deepEqual(whyFailedOverAgain([failover(2.2, 38247, 40505, "eu-west-3a")], killedAt), {});
  });

  it("names who called the new primary down and when, and tells a late Sentinel from a stalled node", () => {
    const events = [
      failover(2.2, 38247, 40505, "eu-west-3a"),
      sentinel(3.244, "sentinel-3", "+sdown", 40505),
      sentinel(3.249, "sentinel-3", "-sdown", 40505),
      seenDown(4.25, []),
      failover(4.4, 40505, 42251, "eu-west-3c"),
    ];
    const why = whyFailedOverAgain(events, killedAt);
    assert.equal(why.failovers?.length, 2);
    assert.match(
      why.whyFailedOverAgain ?? "",
      /failed over the new primary in eu-west-3a \(port 40505\) 2\.20 s after/,
    );
    assert.match(why.whyFailedOverAgain ?? "", /\+sdown\) by sentinel-3 at \+1\.04 s/);
    assert.match(
      why.whyFailedOverAgain ?? "",
      /-sdown\) at \+1\.05 s: a failover once begun is not called off/,
    );
    assert.match(
      why.whyFailedOverAgain ?? "",
      /first good reply .* 1047 ms after the switch, past down-after-milliseconds \(1000 ms\)/,
    );
    assert.match(why.whyFailedOverAgain ?? "", /the node did not stall: the Sentinel reached it late/);
    // A node that did stall (a latency spike recorded) is not blamed on the Sentinel.
    const stalled = whyFailedOverAgain(
      [
        ...events.slice(0, 3),
        seenDown(4.25, ["fork 1200 ms at 2026-12-07T12:06:31.000Z (max 1200 ms)"]),
        events[4] as TimedStackEvent,
      ],
      killedAt,
    );
    assert.match(stalled.whyFailedOverAgain ?? "", /latency spikes: fork 1200 ms/);
    assert.doesNotMatch(stalled.whyFailedOverAgain ?? "", /did not stall/);
    // Events before the kill belong to an earlier run.
    assert.deepEqual(
      whyFailedOverAgain(
        events.map((e) => ({ ...e, time: at(-60) })),
        killedAt,
      ),
      {},
    );
  });
});
