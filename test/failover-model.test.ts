import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  failoverModelCoverage,
  formatFailoverCoverage,
  formatFailoverModel,
  formatModelAssumptions,
  modelFailover,
} from "../src/aws/failover-model.ts";
import { description, inHostedZone } from "./aws-helpers.ts";

describe("modeled worst-case failover times", () => {
  it("come from the description's intervals and thresholds, next to AWS defaults", async () => {
    const rows = modelFailover(await description("prod"));
    const byScenario = new Map(rows.map((r) => [r.scenario, r]));
    // ALB: interval 10 × 2 + timeout 5 = 25 s, against the seed's 30 × 2 + 5 = 65 s.
    assert.deepEqual(
      [
        byScenario.get("instance dies: the ALB stops routing to it")?.stayupSeconds,
        byScenario.get("instance dies: the ALB stops routing to it")?.awsDefaultSeconds,
      ],
      [25, 65],
    );
    // Without aws.hostedZone no failover record is deployed: no region-loss figures.
    assert.ok(!rows.some((r) => r.scenario.startsWith("region lost")));
    assert.equal(byScenario.get("scale-in or deploy: a target drains")?.stayupSeconds, 30);
  });

  it("a region's loss phase by phase: detection, alarm, standby start, DNS, served; from the settings and the stated boot", async () => {
    const rows = modelFailover(await description("prod", (d) => inHostedZone(d)));
    const at = (phase: string) => rows.find((r) => r.scenario.startsWith(`region lost: ${phase}`));
    // Route 53: 10 s × 8 = 80 s at worst (70 s at best, past the 60 s an ElastiCache failover may take); seed: 30 s × 3.
    assert.deepEqual([at("detection")?.stayupSeconds, at("detection")?.awsDefaultSeconds], [80, 90]);
    assert.equal(at("alarm")?.stayupSeconds, 80 + 60);
    // Pilot light: alarm + Lambda 10 + boot 45 + install 45 + 10 s × 2 healthy checks.
    assert.equal(at("standby start")?.stayupSeconds, 140 + 10 + 45 + 45 + 20);
    // No check on the SECONDARY: clients resolve to it at detection + TTL, and wait for its start.
    assert.equal(at("DNS")?.stayupSeconds, 81);
    assert.equal(at("clients served")?.stayupSeconds, 260);
    // The seed, both records checked: the secondary answered only once Route 53 finds it healthy.
    const seedStart = 90 + 60 + 10 + 45 + 45 + 30 * 5;
    assert.equal(at("DNS")?.awsDefaultSeconds, seedStart + 30 * 3 + 60);
    assert.match(formatModelAssumptions(), /bundle.*stayup-boot\.log/);
  });

  it("follow a changed description", async () => {
    const slower = await description("prod", (d) => {
      inHostedZone(d);
      d.targetGroup.healthCheck.aws.intervalSeconds = 30;
      d.targetGroup.healthCheck.unhealthyThreshold = 3;
      if (d.regions.secondary) d.regions.secondary.standby.mode = "active";
      if (d.dns) d.dns.ttlSeconds = 30;
      // 30 s × 3 + 5 s to take dead targets out: the region check must wait longer (at least 4 × 30 s).
      if (d.dns) d.dns.healthCheck.failureThreshold = 5;
      if (d.dns) d.dns.healthCheck.aws.intervalSeconds = 30;
      if (d.dns) d.dns.healthCheck.local.intervalMs = 2000;
    });
    const rows = modelFailover(slower);
    assert.equal(rows.find((r) => r.scenario.startsWith("instance dies"))?.stayupSeconds, 30 * 3 + 5);
    assert.equal(rows.find((r) => r.scenario.startsWith("region lost: DNS"))?.stayupSeconds, 30 * 5 + 30);
    assert.equal(
      rows.find((r) => r.scenario.startsWith("region lost: standby start"))?.formula,
      "already serving",
      "an active secondary is already serving",
    );
    assert.match(formatFailoverModel(rows), /SCENARIO .*STAYUP\s+AWS DEFAULTS/);
  });
});

describe("what the failover model covers", () => {
  it("names gray failures as mitigated by weighted_random with anomaly mitigation, and its limits", async () => {
    const { covers, doesNotCover } = failoverModelCoverage(await description("prod"));
    assert.ok(covers.some((c) => /anomaly mitigation, weighted_random/.test(c)));
    assert.ok(
      doesNotCover.some((c) => /at least 3 healthy targets: prod runs 3 .* on while all are healthy/.test(c)),
    );
    assert.ok(doesNotCover.some((c) => /latency/.test(c)));
    const dev = failoverModelCoverage(await description("dev"));
    assert.ok(dev.doesNotCover.some((c) => /dev runs 2 \(desired capacity\), so it is off there/.test(c)));
  });

  it("says gray failures are not covered when the description turns anomaly mitigation off", async () => {
    const { covers, doesNotCover } = failoverModelCoverage(
      await description(
        "prod",
        (d) => (d.targetGroup.aws = { algorithm: "round_robin", anomalyMitigation: false }),
      ),
    );
    assert.ok(!covers.some((c) => /anomaly/.test(c)));
    assert.ok(doesNotCover.some((c) => /uses round_robin without anomaly mitigation/.test(c)));
    assert.match(
      formatFailoverCoverage({ covers, doesNotCover }),
      /^The model covers:\n {2}\+ .*\nIt does not cover:\n/,
    );
  });
});
