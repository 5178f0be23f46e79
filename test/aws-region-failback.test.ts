/**
 * Issue 24, the failback with a Global Datastore (redis.crossRegion "replica"), read off the
 * dns-failover stack with CDK assertions (Template.fromStack), one behaviour per test, and the
 * failback Lambda's order against a mocked SDK.
 *
 * The rule (docs/region-failover.md, "Failback with a cross-region replica"): the primary region's
 * Route 53 check reads the region health endpoint, which passes a region that can serve: instances
 * up, Redis reachable, and writes only where Redis is the writer (src/web-service/region-health.ts;
 * test/region-health.test.ts shows it on real Redis). So once the primary region is back, its Redis
 * a read-only member following the secondary's, the check passes, DNS answers the primary, the
 * "primary healthy" alarm runs the failback Lambda, and the Lambda promotes the primary's member
 * once it has caught up (associated), waiting for that within its run.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  DescribeGlobalReplicationGroupsCommand,
  ElastiCacheClient,
  FailoverGlobalReplicationGroupCommand,
} from "@aws-sdk/client-elasticache";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import { Match, Template } from "aws-cdk-lib/assertions";
import { mockClient } from "aws-sdk-client-mock";
import { addStayupStacks } from "../src/aws/app.ts";
import { createStayupApp } from "../src/aws/compliance/checks.ts";
import { failback } from "../src/aws/failover/handlers.ts";
import { REGION_HEALTH_CHECK_PATH } from "../src/stack/derived.ts";
import type { StackDescription } from "../src/stack/index.ts";
import {
  AWS_TIMING_ASSUMPTIONS,
  FAILBACK_LAMBDA_TIMEOUT_SECONDS,
} from "../src/stack/region-failover-timing.ts";
import {
  description,
  globalDatastoreLambdaEnvironment,
  globalDatastoreMembers,
  inHostedZone,
  withGlobalDatastore,
} from "./aws-helpers.ts";
import { tempDir } from "./helpers.ts";

/** The dns-failover stack's template, built in-process (an offline synthesis, no account). */
async function dnsFailoverTemplate(change: (d: StackDescription) => void): Promise<Template> {
  const stack = await description("prod", change);
  const app = createStayupApp({ outdir: path.join(tempDir("stayup-failback-"), "prod") });
  const stacks = addStayupStacks(app, stack, path.join(tempDir("stayup-failback-bundle-"), "aws-bundle"));
  assert.ok(stacks.dnsFailover, "a dns-failover stack");
  return Template.fromStack(stacks.dnsFailover);
}

describe("failback with a Global Datastore: the dns-failover stack", { timeout: 240_000 }, () => {
  let withReplica: Template;
  let withoutReplica: Template;
  const templates = async () => {
    withReplica ??= await dnsFailoverTemplate(withGlobalDatastore);
    withoutReplica ??= await dnsFailoverTemplate(inHostedZone);
    return { withReplica, withoutReplica };
  };
  const functionId = (t: Template, handler: string) => {
    const [id] = Object.keys(
      t.findResources("AWS::Lambda::Function", { Properties: { Handler: `index.${handler}` } }),
    );
    assert.ok(id, handler);
    return id;
  };

  it("the primary's Route 53 check reads the region health endpoint (which passes a region whose Redis follows)", async () => {
    const { withReplica: t } = await templates();
    t.hasResourceProperties("AWS::Route53::HealthCheck", {
      HealthCheckConfig: Match.objectLike({
        FullyQualifiedDomainName: Match.stringLikeRegexp("^primary\\."),
        ResourcePath: REGION_HEALTH_CHECK_PATH,
      }),
    });
  });

  it("that check turning healthy runs the failback Lambda: the trigger is the check that a following region passes", async () => {
    const { withReplica: t } = await templates();
    const [checkId] = Object.keys(
      t.findResources("AWS::Route53::HealthCheck", {
        Properties: { HealthCheckConfig: { ResourcePath: REGION_HEALTH_CHECK_PATH } },
      }),
    );
    t.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "HealthCheckStatus",
      Dimensions: [{ Name: "HealthCheckId", Value: { Ref: checkId } }],
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      Threshold: 1,
      AlarmActions: [{ "Fn::GetAtt": [functionId(t, "failbackHandler"), "Arn"] }],
    });
  });

  it("the failback Lambda waits within its run for the primary's member to catch up: its timeout and wait from one place", async () => {
    const { withReplica: t } = await templates();
    t.hasResourceProperties("AWS::Lambda::Function", {
      Handler: "index.failbackHandler",
      Timeout: FAILBACK_LAMBDA_TIMEOUT_SECONDS,
      Environment: {
        Variables: Match.objectLike({
          CATCH_UP_WAIT_SECONDS: String(AWS_TIMING_ASSUMPTIONS.globalDatastoreCatchUp.seconds),
          GLOBAL_REPLICATION_GROUP_ID: Match.anyValue(),
        }),
      },
    });
    assert.ok(FAILBACK_LAMBDA_TIMEOUT_SECONDS <= 900, "within Lambda's 15-minute cap");
  });

  it("the failover Lambda does not wait: the lost region's member is not waited for", async () => {
    const { withReplica: t } = await templates();
    t.hasResourceProperties("AWS::Lambda::Function", {
      Handler: "index.failoverHandler",
      Timeout: 30,
      Environment: { Variables: Match.not(Match.objectLike({ CATCH_UP_WAIT_SECONDS: Match.anyValue() })) },
    });
  });

  it("without a Global Datastore the failback Lambda neither waits nor names a datastore", async () => {
    const { withoutReplica: t } = await templates();
    const [fn] = Object.values(
      t.findResources("AWS::Lambda::Function", { Properties: { Handler: "index.failbackHandler" } }),
    ) as { Properties: { Timeout: number; Environment: { Variables: Record<string, unknown> } } }[];
    assert.ok(fn);
    assert.equal(fn.Properties.Timeout, 30);
    assert.equal(fn.Properties.Environment.Variables.CATCH_UP_WAIT_SECONDS, undefined);
    assert.equal(fn.Properties.Environment.Variables.GLOBAL_REPLICATION_GROUP_ID, undefined);
  });
});

describe("failback with a Global Datastore: the Lambda's order (mocked SDK)", () => {
  const autoScaling = mockClient(AutoScalingClient);
  const sns = mockClient(SNSClient);
  const elastiCache = mockClient(ElastiCacheClient);
  const saved = { ...process.env };
  const alarm = { alarmData: { alarmName: "primary-healthy", state: { value: "ALARM" as const } } };
  /** The datastore after the failover: the secondary's member primary, the primary's following. */
  const datastore = (primaryMemberStatus: string) => globalDatastoreMembers("us-east-1", primaryMemberStatus);
  const instant = { sleep: async () => undefined, pollMs: 0 };

  beforeEach(() => {
    for (const m of [autoScaling, sns, elastiCache]) m.reset();
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [{ AutoScalingGroupName: "g", MinSize: 3, DesiredCapacity: 3 } as never],
    });
    autoScaling.on(UpdateAutoScalingGroupCommand).resolves({});
    sns.on(PublishCommand).resolves({});
    elastiCache.on(FailoverGlobalReplicationGroupCommand).resolves({});
    Object.assign(process.env, { ...globalDatastoreLambdaEnvironment, CATCH_UP_WAIT_SECONDS: "600" });
  });
  afterEach(() => {
    process.env = { ...saved };
  });

  it("one run: waits while the primary's member is associating, promotes it once associated, then returns the secondary to standby", async () => {
    elastiCache
      .on(DescribeGlobalReplicationGroupsCommand)
      .resolvesOnce(datastore("associating"))
      .resolvesOnce(datastore("associating"))
      .resolves(datastore("associated"));
    const result = await failback(alarm, {
      autoScaling: autoScaling as never,
      sns: sns as never,
      elastiCache: elastiCache as never,
      promotionWait: instant,
    });
    assert.equal(elastiCache.commandCalls(DescribeGlobalReplicationGroupsCommand).length, 3);
    const promotions = elastiCache.commandCalls(FailoverGlobalReplicationGroupCommand);
    assert.equal(promotions.length, 1);
    assert.equal(promotions[0]?.args[0].input.PrimaryRegion, "eu-west-3");
    assert.equal(result.redis?.promoted, true);
    assert.equal(
      autoScaling.commandCalls(UpdateAutoScalingGroupCommand).length,
      1,
      "resized after the promotion",
    );
  });

  it("past its wait the run fails (Lambda retries), promoting nothing and leaving the secondary serving", async () => {
    elastiCache.on(DescribeGlobalReplicationGroupsCommand).resolves(datastore("associating"));
    await assert.rejects(
      failback(alarm, {
        autoScaling: autoScaling as never,
        sns: sns as never,
        elastiCache: elastiCache as never,
        promotionWait: { ...instant, seconds: 0 },
      }),
      /not yet caught up/,
    );
    assert.equal(elastiCache.commandCalls(FailoverGlobalReplicationGroupCommand).length, 0);
    assert.equal(autoScaling.commandCalls(UpdateAutoScalingGroupCommand).length, 0);
  });
});
