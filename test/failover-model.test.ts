import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  failoverModelCoverage,
  formatFailoverCoverage,
  formatFailoverModel,
  modelFailover,
} from "../src/aws/failover-model.ts";
import { description } from "./aws-helpers.ts";

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
    // Route 53: 10 s × 2 + the failover CNAME's TTL 1 s = 21 s, against 30 s × 3 + alias 60 s = 150 s.
    const region = byScenario.get("region lost: clients resolve to the secondary");
    assert.deepEqual([region?.stayupSeconds, region?.awsDefaultSeconds], [21, 150]);
    assert.ok(byScenario.has("region lost: pilot-light secondary at full capacity"));
    assert.equal(byScenario.get("scale-in or deploy: a target drains")?.stayupSeconds, 30);
  });

  it("follow a changed description", async () => {
    const slower = await description("prod", (d) => {
      d.targetGroup.healthCheck.aws.intervalSeconds = 30;
      d.targetGroup.healthCheck.unhealthyThreshold = 3;
      if (d.regions.secondary) d.regions.secondary.standby.mode = "active";
      if (d.dns) d.dns.ttlSeconds = 30;
    });
    const rows = modelFailover(slower);
    assert.equal(rows.find((r) => r.scenario.startsWith("instance dies"))?.stayupSeconds, 30 * 3 + 5);
    assert.equal(rows.find((r) => r.scenario.startsWith("region lost: clients"))?.stayupSeconds, 10 * 2 + 30);
    assert.ok(
      !rows.some((r) => r.scenario.includes("secondary at full capacity")),
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
