import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimateCost } from "../src/aws/cost/estimate.ts";
import { steadyContainerInstances } from "../src/aws/cost/ecs-capacity.ts";
import { tradeOffs } from "../src/aws/cost/trade-offs.ts";
import { costOf } from "../src/cli/commands/cost/index.ts";
import type { StackDescription } from "../src/stack/index.ts";
import { description, inHostedZone } from "./aws-helpers.ts";
import { configPath, runCli, tempDir } from "./helpers.ts";

/** One region, us-east-1 (priced in src/aws/cost/prices.ts), no secondary. */
const inUsEast1 = (d: StackDescription) => {
  d.regions.primary = { name: "us-east-1", availabilityZones: ["us-east-1a", "us-east-1b", "us-east-1c"] };
  delete d.regions.secondary;
};

describe("stayup cost", { timeout: 240_000 }, () => {
  it("prices the fixed dev description to the total computed by hand", async () => {
    const estimate = costOf(await description("dev", inUsEast1), tempDir("stayup-cost-"));
    assert.deepEqual(estimate.unpriced, []);
    const hours = 730;
    const byHand =
      // network: flow-log group (1 GB), the NAT's Elastic IP, one NAT gateway with 10 GB
      0.5 * 1 +
      0.005 * hours +
      (0.045 * hours + 0.045 * 10) +
      // database: the AUTH token's secret, three cache.t4g.micro nodes (Multi-AZ: one per AZ)
      0.4 +
      3 * 0.016 * hours +
      // web: log bucket (1 GB), ALB with 1 LCU, its 3 public addresses, instance log group (1 GB)
      0.023 * 1 +
      (0.0225 + 0.008) * hours +
      3 * 0.005 * hours +
      0.5 * 1 +
      // 2 × t3.micro, their 8 GiB gp3 volumes, 7 detailed-monitoring metrics each
      2 * 0.0104 * hours +
      2 * 8 * 0.08 +
      2 * 7 * 0.3 +
      // the two alarms the group's CPU target tracking creates
      2 * 0.1;
    assert.equal(estimate.total, Math.round(byHand * 100) / 100);
    assert.equal(estimate.total, 127.49);
    const nat = estimate.items.find((i) => i.type === "AWS::EC2::NatGateway");
    assert.match(nat?.what ?? "", /10 GB processed \(assumed\)/);
  });

  it("dev costs less than prod", async () => {
    const dev = costOf(await description("dev", inUsEast1), tempDir("stayup-cost-"));
    const prod = costOf(await description("prod", inUsEast1), tempDir("stayup-cost-"));
    assert.ok(dev.complete && prod.complete);
    assert.ok(dev.total < prod.total, `dev ${dev.total} < prod ${prod.total}`);
    // prod's extra NAT gateways are two of the reasons
    assert.equal(prod.items.filter((i) => i.type === "AWS::EC2::NatGateway").length, 3);
  });

  it("answers the seeds' trade-offs with numbers", async () => {
    const stack = await description("dev", (d) => {
      inUsEast1(d);
      inHostedZone(d);
      d.regions.secondary = {
        name: "us-east-2",
        availabilityZones: ["us-east-2a", "us-east-2b", "us-east-2c"],
        standby: { mode: "pilot-light", warmCapacity: 1 },
        localHost: "127.0.0.2",
      };
    });
    const rows = tradeOffs(stack, { ...estimateCost([]), items: [] });
    const by = (q: RegExp) => rows.find((r) => q.test(r.question));
    // two more NAT gateways, each 730 h × ($0.045 + $0.005 for its address) + 10 GB × $0.045
    assert.equal(by(/one NAT gateway vs one per AZ/)?.usdPerMonth, 73.9);
    // ALB 730 h × ($0.0225 + 1 LCU × $0.008) and its 3 addresses, less one Elastic IP: $29.565
    const alb = by(/load balancer vs a single instance/)?.usdPerMonth ?? Number.NaN;
    assert.ok(Math.abs(alb - 29.565) < 0.006, `ALB vs Elastic IP: ${alb}`);
    // us-east-2 is not in the price table: said, not priced at 0
    assert.equal(by(/pilot-light vs warm standby/)?.usdPerMonth, null);
    assert.match(by(/pilot-light vs warm standby/)?.answer ?? "", /no prices for us-east-2/);
    assert.ok(by(/stopping dev's instances at night/));
  });

  it("a standby region without aws.hostedZone is priced as what deploy refuses, not as a working standby", async () => {
    const stack = await description("dev");
    const rows = tradeOffs(stack, {
      ...estimateCost([]),
      items: [
        {
          stack: "stayup-dev-secondary-web",
          region: "us-east-1",
          resource: "Alb",
          type: "AWS::ElasticLoadBalancingV2::LoadBalancer",
          what: "ALB",
          usdPerMonth: 20,
        },
        {
          stack: "stayup-dev-web",
          region: "eu-west-3",
          resource: "Alb",
          type: "AWS::ElasticLoadBalancingV2::LoadBalancer",
          what: "ALB",
          usdPerMonth: 22,
        },
      ],
    });
    const row = rows.find((r) => /without aws\.hostedZone/.test(r.question));
    assert.equal(row?.usdPerMonth, 20);
    assert.match(row?.answer ?? "", /deploy refuses it: no Route 53 failover record/);
    assert.ok(
      !rows.some((r) => /pilot-light vs warm standby/.test(r.question)),
      "no claim that warm serves at once",
    );
  });

  it("ECS prod: 3 tasks spread at 75 % target utilisation run on 4 container instances, priced so", async () => {
    const stack = await description("prod", (d) => {
      inUsEast1(d);
      d.topology = "ecs";
    });
    assert.deepEqual(
      [
        stack.ecs.tasks.desired,
        stack.ecs.placement,
        stack.ecs.clusterTargetUtilizationPercent,
        stack.web.capacity.min,
      ],
      [3, "spread", 75, 3],
    );
    assert.equal(steadyContainerInstances(stack).count, 4);
    const estimate = costOf(stack, tempDir("stayup-cost-"));
    const group = estimate.items.find(
      (i) => i.type === "AWS::AutoScaling::AutoScalingGroup" && /t3\.small/.test(i.what),
    );
    assert.match(
      group?.what ?? "",
      /^4 × t3\.small \(steady state: 3 spread tasks on 3 instance\(s\), at 75 % target utilisation/,
    );
    assert.equal(group?.usdPerMonth, Math.round(4 * 0.0208 * 730 * 100) / 100);
  });

  it("ECS dev: 2 tasks binpacked at 100 % fit one instance; the group's minimum of 2 runs", async () => {
    const stack = await description("dev", (d) => {
      inUsEast1(d);
      d.topology = "ecs";
    });
    assert.equal(steadyContainerInstances(stack).count, stack.web.capacity.min);
    assert.match(steadyContainerInstances(stack).why, /2 binpack tasks on 1 instance/);
  });

  it("ECS: Container Insights, the scaling alarms (tasks and managed scaling) are priced; nothing is unpriced", async () => {
    const estimate = costOf(
      await description("prod", (d) => {
        inUsEast1(d);
        d.topology = "ecs";
      }),
      tempDir("stayup-cost-"),
    );
    assert.deepEqual(estimate.unpriced, []);
    const insights = estimate.items.find((i) => i.type === "AWS::ECS::Cluster");
    // 11 cluster + 13 × 1 service + 8 × 1 task family metrics at $0.30, 1 GB of performance logs at $0.50
    assert.equal(insights?.usdPerMonth, Math.round(((11 + 13 + 8) * 0.3 + 0.5) * 100) / 100);
    const tracking = estimate.items.filter((i) => /alarms/.test(i.what));
    assert.deepEqual(
      tracking.map((i) => [i.type, i.usdPerMonth]),
      [
        ["AWS::ECS::CapacityProvider", 0.2],
        ["AWS::ApplicationAutoScaling::ScalingPolicy", 0.2],
      ],
    );
  });

  it("Route 53: the failover name's queries are priced once; alias records (to the load balancers) are free", async () => {
    const estimate = costOf(
      // The repository's regions (eu-west-3, and us-east-1 second), with a zone: failover rendered.
      await description("prod", (d) => inHostedZone(d)),
      tempDir("stayup-cost-"),
    );
    const queries = estimate.items.filter((i) => i.type === "AWS::Route53::RecordSet");
    assert.deepEqual(
      queries.map((i) => [i.what, i.usdPerMonth]),
      [["1 million DNS queries (assumed)", 0.4]],
    );
    assert.ok(
      (estimate.free.find((f) => f.type === "AWS::Route53::RecordSet")?.count ?? 0) >= 3,
      "the secondary record and the aliases",
    );
  });

  it("an unknown resource type or region is named, never priced at 0", () => {
    const estimate = estimateCost([
      { stack: "s", region: "us-east-1", template: { Resources: { Thing: { Type: "AWS::Foo::Bar" } } } },
      { stack: "t", region: "ap-south-2", template: { Resources: { Ip: { Type: "AWS::EC2::EIP" } } } },
    ]);
    assert.equal(estimate.complete, false);
    assert.equal(estimate.total, 0);
    assert.deepEqual(
      estimate.unpriced.map((u) => [u.resource, u.type, u.reason]),
      [
        ["Thing", "AWS::Foo::Bar", "resource type not in the price table"],
        ["Ip", "AWS::EC2::EIP", "no prices for region ap-south-2"],
      ],
    );
  });

  it("the repository's description (eu-west-3 and us-east-1) is fully priced in dev and prod", async () => {
    for (const env of ["dev", "prod"] as const) {
      const estimate = costOf(await description(env), tempDir("stayup-cost-"));
      assert.deepEqual(estimate.unpriced, [], `${env}: ${JSON.stringify(estimate.unpriced)}`);
      assert.equal(estimate.complete, true);
      const regions = new Set(estimate.items.map((i) => i.region));
      assert.deepEqual([...regions].sort(), ["eu-west-3", "us-east-1"], env);
      // every price used has its source and date
      for (const { region, key, price } of estimate.prices)
        assert.ok(
          price.source.startsWith("https://") && /^\d{4}-\d{2}-\d{2}$/.test(price.date),
          `${region} ${key}`,
        );
    }
  });

  it("`stayup cost --json` on the repository's description: total, items, nothing unpriced (exit 0)", async () => {
    const result = await runCli(["cost", "--config", configPath, "--env", "dev", "--json"], {
      timeoutMs: 200_000,
    });
    assert.equal(result.code, 0, result.stderr);
    const out = JSON.parse(result.stdout) as { total: number; items: unknown[]; unpriced: unknown[] };
    assert.ok(out.total > 0);
    assert.ok(out.items.length > 0);
    assert.deepEqual(out.unpriced, []);
  });
});
