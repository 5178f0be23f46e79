import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatFailoverModel, modelFailover } from "../src/aws/failover-model.ts";
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
