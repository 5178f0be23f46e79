/**
 * Seed 002's Route 53 failover on AWS, as rendered from the description: CDK assertions on the
 * dns-failover stack, and the bundled Lambda code that stack deploys, run against a mocked SDK.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { before, describe, it } from "node:test";
import { mockClient } from "aws-sdk-client-mock";
import {
  description,
  inHostedZone,
  inOtherRegions,
  resourcesOf,
  type Synthesized,
  synth,
} from "./aws-helpers.ts";
import { derive, REGION_HEALTH_CHECK_PATH } from "../src/stack/derived.ts";
import { route53FailoverAnswer } from "../src/stack/route53-failover.ts";

type Json = Record<string, unknown>;
type Resource = { Type: string; Properties: Json; Metadata?: Json };

const resources = (json: Json) => json.Resources as Record<string, Resource>;
const one = (json: Json, type: string, match: (r: Resource) => boolean): [string, Resource] => {
  const found = Object.entries(resources(json)).filter(([, r]) => r.Type === type && match(r));
  assert.equal(found.length, 1, `exactly one ${type} matching`);
  return found[0] as [string, Resource];
};

/** CloudWatch's comparison, to show that each alarm changes state on one of the metric's two values. */
function breaches(operator: string, value: number, threshold: number): boolean {
  switch (operator) {
    case "LessThanThreshold":
      return value < threshold;
    case "LessThanOrEqualToThreshold":
      return value <= threshold;
    case "GreaterThanThreshold":
      return value > threshold;
    case "GreaterThanOrEqualToThreshold":
      return value >= threshold;
    default:
      throw new Error(`unexpected operator ${operator}`);
  }
}

describe("AWS: Route 53 failover (seed 002)", () => {
  let out: Synthesized;
  let json: Json;
  before(async () => {
    out = synth(await description("dev", (d) => inHostedZone(d)));
    json = out.json["dns-failover"] as Json;
  });

  it("without a hosted zone nothing touches DNS; with one, a seventh stack in us-east-1 deploys last", async () => {
    const plain = synth(await description("dev"));
    assert.equal(plain.order.length, 6);
    for (const t of Object.values(plain.json))
      assert.equal(resourcesOf(t, "AWS::Route53::RecordSet").length, 0);
    assert.equal(out.order.at(-1), "stayup-dev-dns-failover");
    assert.equal(out.regions["stayup-dev-dns-failover"], "us-east-1");
    assert.equal(out.order.length, 7);
  });

  it("each region's load balancer publishes its own name in the zone", () => {
    for (const [kind, name] of [
      ["web", "primary.app.example.com."],
      ["secondary-web", "secondary.app.example.com."],
    ] as const) {
      out.templates[kind]?.hasResourceProperties("AWS::Route53::RecordSet", {
        Name: name,
        Type: "A",
        HostedZoneId: "Z0123456789ABC",
      });
    }
  });

  it("a health check on the primary's name only, on the region health path, slower to call it down than a recovery inside it", async () => {
    const checks = resourcesOf(json, "AWS::Route53::HealthCheck");
    assert.equal(checks.length, 1, "no health check on the secondary (a pilot light would fail it)");
    const stack = await description("dev", (d) => inHostedZone(d));
    const timing = derive(stack).regionTiming;
    const [, check] = one(json, "AWS::Route53::HealthCheck", (r) => {
      const c = r.Properties.HealthCheckConfig as Json;
      return (
        c.FullyQualifiedDomainName === "primary.app.example.com" &&
        c.Type === "HTTP" &&
        c.Port === 80 &&
        c.ResourcePath === REGION_HEALTH_CHECK_PATH &&
        c.RequestInterval === stack.dns?.healthCheck.aws.intervalSeconds &&
        c.FailureThreshold === stack.dns?.healthCheck.failureThreshold
      );
    });
    const c = check.Properties.HealthCheckConfig as { RequestInterval: number; FailureThreshold: number };
    assert.ok(timing, "a description with dns has its region timing");
    assert.ok(
      c.RequestInterval * (c.FailureThreshold - 1) > timing.aws.inRegionBudgetSeconds.total,
      `${c.RequestInterval} × (${c.FailureThreshold} − 1) s (the first failed check may come at once) must exceed the in-region budget (${timing.aws.inRegionBudgetSeconds.total} s)`,
    );
  });

  /** The rendered records as the shared Route 53 function reads them. */
  const recordsOf = (template: Json) =>
    (["PRIMARY", "SECONDARY"] as const).map((failover) => {
      const [, r] = one(template, "AWS::Route53::RecordSet", (x) => x.Properties.Failover === failover);
      const check = r.Properties.HealthCheckId as { Ref: string } | undefined;
      return { failover, value: failover, ...(check ? { healthCheck: check.Ref } : {}) };
    });

  it("PRIMARY and SECONDARY failover records for dns.name: the primary checked, the secondary not, the description's TTL", () => {
    const checkId = resourcesOf(json, "AWS::Route53::HealthCheck")[0]?.[0];
    for (const role of ["primary", "secondary"]) {
      const [, record] = one(
        json,
        "AWS::Route53::RecordSet",
        (r) => r.Properties.Failover === role.toUpperCase(),
      );
      assert.deepEqual(
        {
          name: record.Properties.Name,
          type: record.Properties.Type,
          ttl: record.Properties.TTL,
          to: record.Properties.ResourceRecords,
          zone: record.Properties.HostedZoneId,
          check: record.Properties.HealthCheckId,
        },
        {
          name: "app.example.com.",
          type: "CNAME",
          ttl: "1",
          to: [`${role}.app.example.com`],
          zone: "Z0123456789ABC",
          check: role === "primary" ? { Ref: checkId } : undefined,
        },
      );
    }
    // Route 53 with these records: the primary failing sends clients to the pilot light at once,
    // though it has no instance yet (with a check on it, the dead primary would be answered).
    const records = recordsOf(json);
    const primaryCheck = records[0]?.healthCheck as string;
    assert.equal(route53FailoverAnswer(records, { checks: { [primaryCheck]: false } }).value, "SECONDARY");
    assert.equal(route53FailoverAnswer(records, { checks: { [primaryCheck]: true } }).value, "PRIMARY");
  });

  it('checkedRecords "both" checks the secondary too (warm or active only); a pilot light is refused', async () => {
    const warm = synth(
      await description("dev", (d) => {
        inHostedZone(d);
        if (d.regions.secondary) d.regions.secondary.standby = { mode: "warm", warmCapacity: 1 };
        if (d.dns) d.dns.healthCheck.checkedRecords = "both";
      }),
    ).json["dns-failover"] as Json;
    assert.equal(resourcesOf(warm, "AWS::Route53::HealthCheck").length, 2);
    const records = recordsOf(warm);
    const [p, sec] = records.map((r) => r.healthCheck as string);
    assert.ok(sec, "the SECONDARY record carries its check");
    // The secondary-unhealthy rule: both down, Route 53 answers the primary.
    assert.equal(
      route53FailoverAnswer(records, { checks: { [p as string]: false, [sec]: false } }).value,
      "PRIMARY",
    );
    await assert.rejects(
      description("dev", (d) => {
        if (d.dns) d.dns.healthCheck.checkedRecords = "both";
      }),
      /dns\.healthCheck\.checkedRecords.*pilot-light/s,
    );
  });

  it("two alarms on the primary's health check, each able to fire, each invoking its own function", () => {
    const alarms = resourcesOf(json, "AWS::CloudWatch::Alarm").map(([, a]) => a.Properties as Json);
    assert.equal(alarms.length, 2);
    const functionOf = (handler: string) =>
      one(json, "AWS::Lambda::Function", (r) => r.Properties.Handler === `index.${handler}`)[0];
    const primaryCheck = one(
      json,
      "AWS::Route53::HealthCheck",
      (r) => (r.Properties.HealthCheckConfig as Json).FullyQualifiedDomainName === "primary.app.example.com",
    )[0];
    const expected = [
      // HealthCheckStatus is 1 while healthy, 0 while not.
      { name: "stayup-dev-primary-unhealthy", firesOn: 0, handler: "failoverHandler" },
      { name: "stayup-dev-primary-healthy", firesOn: 1, handler: "failbackHandler" },
    ];
    for (const e of expected) {
      const alarm = alarms.find((a) => a.AlarmName === e.name);
      assert.ok(alarm, e.name);
      assert.equal(alarm.Namespace, "AWS/Route53");
      assert.equal(alarm.MetricName, "HealthCheckStatus");
      assert.equal(alarm.Statistic, "Minimum");
      assert.equal(alarm.Period, 60);
      assert.deepEqual(alarm.Dimensions, [{ Name: "HealthCheckId", Value: { Ref: primaryCheck } }]);
      const op = alarm.ComparisonOperator as string;
      const threshold = alarm.Threshold as number;
      assert.equal(breaches(op, e.firesOn, threshold), true, `${e.name} fires on ${e.firesOn}`);
      assert.equal(breaches(op, 1 - e.firesOn, threshold), false, `${e.name} clears on ${1 - e.firesOn}`);
      assert.deepEqual(alarm.AlarmActions, [{ "Fn::GetAtt": [functionOf(e.handler), "Arn"] }]);
    }
    // CloudWatch may invoke each function: one permission per alarm, scoped to that alarm.
    const permissions = resourcesOf(json, "AWS::Lambda::Permission").map(([, p]) => p.Properties as Json);
    assert.equal(permissions.length, 2);
    for (const p of permissions) assert.equal(p.Principal, "lambda.alarms.cloudwatch.amazonaws.com");
  });

  it("the functions resize the secondary group between its active and standby sizes", async () => {
    const env = (handler: string) =>
      (
        one(json, "AWS::Lambda::Function", (r) => r.Properties.Handler === `index.${handler}`)[1].Properties
          .Environment as { Variables: Json }
      ).Variables;
    const failover = env("failoverHandler");
    const failback = env("failbackHandler");
    assert.equal(failover.SECONDARY_REGION, "us-east-1");
    assert.equal(failover.SECONDARY_GROUP_NAME, "stayup-dev-web");
    assert.deepEqual([failover.ACTIVE_MIN_SIZE, failover.ACTIVE_DESIRED_CAPACITY], ["2", "2"]);
    assert.deepEqual([failback.STANDBY_MIN_SIZE, failback.STANDBY_DESIRED_CAPACITY], ["0", "0"]);
    const warm = synth(
      await description("prod", (d) => {
        inHostedZone(d);
        if (d.regions.secondary) d.regions.secondary.standby = { mode: "warm", warmCapacity: 2 };
      }),
    ).json["dns-failover"] as Json;
    const warmFailback = (
      one(warm, "AWS::Lambda::Function", (r) => r.Properties.Handler === "index.failbackHandler")[1]
        .Properties.Environment as { Variables: Json }
    ).Variables;
    assert.deepEqual([warmFailback.STANDBY_MIN_SIZE, warmFailback.STANDBY_DESIRED_CAPACITY], ["2", "2"]);
  });

  it("each function may resize only the secondary group, write only its log group, publish only to its topic", () => {
    const policies = resourcesOf(json, "AWS::IAM::Policy").map(([, p]) => p.Properties as Json);
    assert.equal(policies.length, 2);
    for (const policy of policies) {
      const statements = (policy.PolicyDocument as { Statement: Json[] }).Statement;
      // Only the read of the group, which has no resource-level permissions, is on *.
      for (const s of statements.filter((x) => x.Resource === "*"))
        assert.equal(s.Action, "autoscaling:DescribeAutoScalingGroups");
      const resize = statements.find((s) => s.Action === "autoscaling:UpdateAutoScalingGroup");
      assert.match(
        JSON.stringify(resize?.Resource),
        /:autoscaling:us-east-1:.*:autoScalingGroup:\*:autoScalingGroupName\/stayup-dev-web"/,
      );
      const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])).sort();
      assert.deepEqual(actions, [
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:UpdateAutoScalingGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sns:Publish",
      ]);
    }
  });

  it("notifications: the description's e-mails and webhooks subscribe to the failover topic", async () => {
    const t = synth(
      await description("dev", (d) => {
        inHostedZone(d);
        d.notifications.emails = ["ops@example.com"];
        d.notifications.webhooks = ["https://hooks.example.com/stayup"];
      }),
    ).templates["dns-failover"];
    t?.hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "ops@example.com" });
    t?.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "https",
      Endpoint: "https://hooks.example.com/stayup",
    });
  });

  it("the alarms live in us-east-1 whatever the regions; the functions act on the secondary's region", async () => {
    const elsewhere = synth(
      await description("dev", (d) => {
        inHostedZone(d);
        inOtherRegions(d);
      }),
    );
    assert.equal(elsewhere.regions["stayup-dev-web"], "us-west-2");
    assert.equal(elsewhere.regions["stayup-dev-secondary-web"], "eu-west-1");
    assert.equal(elsewhere.regions["stayup-dev-dns-failover"], "us-east-1");
    const d = elsewhere.json["dns-failover"] as Json;
    assert.match(JSON.stringify(d), /:autoscaling:eu-west-1:/);
    assert.match(JSON.stringify(d), /"SECONDARY_REGION":"eu-west-1"/);
  });

  it("HTTPS: the health checks probe port 443 over HTTPS", async () => {
    const json443 = synth(
      await description("prod", (d) => {
        inHostedZone(d);
        d.aws.https = true;
      }),
    ).json["dns-failover"] as Json;
    for (const [, hc] of resourcesOf(json443, "AWS::Route53::HealthCheck")) {
      const c = (hc.Properties as Json).HealthCheckConfig as Json;
      assert.deepEqual([c.Type, c.Port], ["HTTPS", 443]);
    }
  });

  it("the deployed code: the failback function's bundle runs failback, the failover function's runs failover", async () => {
    // Load the SDK the way the bundle does (CommonJS), so the mocks patch the same classes.
    const require = createRequire(import.meta.url);
    const asg = require("@aws-sdk/client-auto-scaling") as typeof import("@aws-sdk/client-auto-scaling");
    const snsSdk = require("@aws-sdk/client-sns") as typeof import("@aws-sdk/client-sns");
    const autoScaling = mockClient(asg.AutoScalingClient);
    const sns = mockClient(snsSdk.SNSClient);
    autoScaling.on(asg.UpdateAutoScalingGroupCommand).resolves({});
    // A group half-way (min 1, desired 1): each action has something to change.
    autoScaling.on(asg.DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        { AutoScalingGroupName: "stayup-dev-web", MinSize: 1, DesiredCapacity: 1 } as never,
      ],
    });
    sns.on(snsSdk.PublishCommand).resolves({ MessageId: "m-1" });
    const saved = { ...process.env };
    try {
      for (const [handler, expected] of [
        ["failoverHandler", { MinSize: 2, DesiredCapacity: 2, subject: /^stayup failover:/ }],
        ["failbackHandler", { MinSize: 0, DesiredCapacity: 0, subject: /^stayup failback:/ }],
      ] as const) {
        autoScaling.resetHistory();
        sns.resetHistory();
        const [, fn] = one(json, "AWS::Lambda::Function", (r) => r.Properties.Handler === `index.${handler}`);
        const asset = fn.Metadata?.["aws:asset:path"] as string;
        const code = readFileSync(path.join(out.outdir, asset, "index.js"), "utf8");
        const module = { exports: {} as Record<string, (event: unknown) => Promise<{ action: string }>> };
        new Function("require", "module", "exports", code)(require, module, module.exports);
        const variables = (fn.Properties.Environment as { Variables: Json }).Variables;
        process.env = {
          ...saved,
          ...(Object.fromEntries(
            Object.entries(variables).filter(([, v]) => typeof v === "string"),
          ) as Record<string, string>),
          TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:stayup-dev-failover",
        };
        const entry = module.exports[handler];
        assert.ok(typeof entry === "function", `${asset} exports ${handler}`);
        const result = await entry({
          alarmData: { alarmName: "test", state: { value: "ALARM", reason: "Threshold Crossed" } },
        });
        assert.equal(result.action, handler.replace("Handler", ""));
        assert.deepEqual(autoScaling.commandCalls(asg.UpdateAutoScalingGroupCommand)[0]?.args[0].input, {
          AutoScalingGroupName: "stayup-dev-web",
          MinSize: expected.MinSize,
          DesiredCapacity: expected.DesiredCapacity,
        });
        assert.match(
          sns.commandCalls(snsSdk.PublishCommand)[0]?.args[0].input.Subject ?? "",
          expected.subject,
        );
      }
    } finally {
      process.env = saved;
      autoScaling.restore();
      sns.restore();
    }
  });
});
