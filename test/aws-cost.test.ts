import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimateCost } from "../src/aws/cost/estimate.ts";
import { tradeOffs } from "../src/aws/cost/trade-offs.ts";
import { costOf } from "../src/cli/commands/cost/index.ts";
import type { StackDescription } from "../src/stack/index.ts";
import { description } from "./aws-helpers.ts";
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
      2 * 7 * 0.3;
    assert.equal(estimate.total, Math.round(byHand * 100) / 100);
    assert.equal(estimate.total, 127.29);
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
