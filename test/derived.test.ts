import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { LOCAL_ACCOUNT_ID } from "../src/local/notifications/notifier.ts";
import { LocalStack } from "../src/local/runtime.ts";
import { derive, type ResolvedStack } from "../src/stack/index.ts";
import { ALB_IDLE_TIMEOUT_SECONDS, DRILL_CLIENT_TIMEOUT_MS } from "../src/stack/region-failover-timing.ts";
import { description, inHostedZone, resourcesOf, type Synthesized, synth } from "./aws-helpers.ts";
import { tempDir } from "./helpers.ts";

type Json = Record<string, unknown>;
const props = (json: Json, type: string, match: (p: Json) => boolean = () => true): Json => {
  const found = resourcesOf(json, type)
    .map(([, r]) => r.Properties as Json)
    .filter(match);
  assert.equal(found.length, 1, `exactly one ${type}`);
  return found[0] as Json;
};
const lambdaEnv = (json: Json, handler: string) =>
  (
    props(json, "AWS::Lambda::Function", (p) => p.Handler === `index.${handler}`).Environment as {
      Variables: Json;
    }
  ).Variables;
const webGroup = (json: Json) => props(json, "AWS::AutoScaling::AutoScalingGroup");

/**
 * One description (a warm secondary, unusual timings so nothing matches a default by chance),
 * rendered both ways: each setting read back from the local runtime and from the templates.
 */
describe("derived settings: the local runtime and the AWS templates agree", { timeout: 600_000 }, () => {
  let stack: ResolvedStack;
  let local: LocalStack;
  let aws: Synthesized;

  before(async () => {
    stack = await description("prod", (d) => {
      inHostedZone(d);
      if (d.regions.secondary) d.regions.secondary.standby = { mode: "warm", warmCapacity: 2 };
      d.targetGroup.deregistrationDelaySeconds = 17;
      d.instanceGroup = {
        aws: { healthCheckGracePeriodSeconds: 240 },
        local: { healthCheckGracePeriodMs: 12_000, replacementDelayMs: 4_000 },
      };
      d.scaling.aws.warmupSeconds = 90;
      d.scaling.local.warmupMs = 1_500;
    });
    // Built, not started: its settings are what it would run with.
    local = new LocalStack({ stack, stateDir: tempDir(), listenerPort: 0, redisPort: 0, dnsPort: 0 });
    aws = synth(stack);
  });

  it("the region health check's path: the local failover probe and Route 53's health checks", () => {
    const json = aws.json["dns-failover"] as Json;
    const paths = resourcesOf(json, "AWS::Route53::HealthCheck").map(
      ([, r]) => ((r.Properties as Json).HealthCheckConfig as Json).ResourcePath,
    );
    assert.ok(local.failover);
    const checked = local.failover.options.derived.failoverRecords.filter((r) => r.healthCheck);
    assert.equal(paths.length, checked.length, "a Route 53 health check per checked record, as locally");
    for (const p of paths) assert.equal(p, local.failover.options.derived.regionHealthCheckPath);
    assert.notEqual(paths[0], stack.targetGroup.healthCheck.path, "not the target group's cheap check");
  });

  it("the failover records: the SECONDARY carries a health check on AWS exactly when the local DNS checks it", () => {
    const json = aws.json["dns-failover"] as Json;
    const records = resourcesOf(json, "AWS::Route53::RecordSet").map(([, r]) => r.Properties as Json);
    assert.ok(local.failover);
    for (const record of local.failover.options.derived.failoverRecords) {
      const rendered = records.find((r) => r.Failover === record.failover);
      assert.equal(Boolean(rendered?.HealthCheckId), Boolean(record.healthCheck), record.failover);
    }
  });

  it("region detection: Route 53's and the local probe's threshold × interval, each past its in-region budget", () => {
    const json = aws.json["dns-failover"] as Json;
    const [, check] = resourcesOf(json, "AWS::Route53::HealthCheck")[0] ?? [];
    const c = (check?.Properties as Json).HealthCheckConfig as {
      RequestInterval: number;
      FailureThreshold: number;
    };
    const timing = derive(stack).regionTiming;
    assert.ok(timing && stack.dns);
    assert.equal(c.RequestInterval * c.FailureThreshold, timing.aws.regionDetectionSeconds);
    assert.ok(timing.aws.earliestRegionDetectionSeconds > timing.aws.inRegionBudgetSeconds.total);
    assert.equal(
      stack.dns.healthCheck.local.intervalMs * stack.dns.healthCheck.failureThreshold,
      timing.local.regionDetectionMs,
    );
    assert.ok(timing.local.earliestRegionDetectionMs > timing.local.inRegionBudgetMs.total);
  });

  it("the write hold: each side's instances hold a count through their Redis failover budget (issue 25, item 2)", () => {
    const timing = derive(stack).regionTiming;
    assert.ok(timing);
    // Locally the Sentinels' whole budget; the drills' client waits longer than that.
    const localHold = Number(local.redis.environment().STAYUP_REDIS_WRITE_HOLD_MS);
    assert.equal(localHold, timing.local.inRegionBudgetMs.redisFailover);
    assert.ok(DRILL_CLIENT_TIMEOUT_MS > localHold);
    // On AWS ElastiCache's budget, short of the ALB's idle timeout (a 504 there would hide the reason).
    const awsHold =
      Math.min(timing.aws.inRegionBudgetSeconds.redisFailover, ALB_IDLE_TIMEOUT_SECONDS - 5) * 1000;
    assert.match(JSON.stringify(aws.json.web), new RegExp(`STAYUP_REDIS_WRITE_HOLD_MS=${awsHold}\\b`));
  });

  it("a warm secondary's standby: min and desired at warmCapacity on both sides", () => {
    const secondary = local.secondary?.group.capacity;
    assert.deepEqual(secondary && { min: secondary.min, desired: secondary.desired }, { min: 2, desired: 2 });
    assert.equal(webGroup(aws.json["secondary-web"] as Json).MinSize, String(secondary?.min));
    const failback = lambdaEnv(aws.json["dns-failover"] as Json, "failbackHandler");
    assert.deepEqual(
      [failback.STANDBY_MIN_SIZE, failback.STANDBY_DESIRED_CAPACITY],
      [String(secondary?.min), String(secondary?.desired)],
    );
  });

  it("the failover capacity: the description's, as the failover Lambda sets it", () => {
    assert.ok(local.failover);
    const localFailover = local.failover.options.derived.failoverCapacity;
    const failover = lambdaEnv(aws.json["dns-failover"] as Json, "failoverHandler");
    assert.deepEqual(
      [failover.ACTIVE_MIN_SIZE, failover.ACTIVE_DESIRED_CAPACITY],
      [String(localFailover.min), String(localFailover.desired)],
    );
    // Not the primary's live capacity: a scaled-out primary does not change it.
    local.primary.group.setDesiredCapacity(stack.web.capacity.max, "test");
    assert.equal(local.failover.options.derived.failoverCapacity.desired, stack.web.capacity.desired);
  });

  it("the deregistration delay: the local target group drains as long as the ALB's", () => {
    const attributes = props(aws.json.web as Json, "AWS::ElasticLoadBalancingV2::TargetGroup")
      .TargetGroupAttributes as { Key: string; Value: string }[];
    const delay = attributes.find((a) => a.Key === "deregistration_delay.timeout_seconds")?.Value;
    assert.equal(delay, "17");
    assert.equal(local.primary.targetGroup.deregistrationDelayMs, Number(delay) * 1000);
  });

  it("the health-check grace period: AWS's and the local one, each from the description", () => {
    const d = derive(stack);
    assert.equal(webGroup(aws.json.web as Json).HealthCheckGracePeriod, d.healthCheckGracePeriod.awsSeconds);
    assert.equal(d.healthCheckGracePeriod.awsSeconds, 240);
    assert.equal(
      local.primary.group.options.policy?.healthCheckGracePeriodMs,
      d.healthCheckGracePeriod.localMs,
    );
    assert.equal(d.healthCheckGracePeriod.localMs, 12_000);
    assert.equal(local.primary.group.options.policy?.replacementDelayMs, 4_000);
  });

  it("the instance warm-up: target tracking and instance refresh on AWS, scaling locally", () => {
    const d = derive(stack);
    const web = aws.json.web as Json;
    assert.equal(
      props(web, "AWS::AutoScaling::ScalingPolicy").EstimatedInstanceWarmup,
      d.instanceWarmup.awsSeconds,
    );
    const refresh = JSON.stringify(resourcesOf(web, "AWS::AutoScaling::AutoScalingGroup").map(([, r]) => r));
    assert.match(refresh, new RegExp(`"InstanceWarmup":"?${d.instanceWarmup.awsSeconds}"?`));
    assert.equal(d.instanceWarmup.awsSeconds, 90);
    assert.equal(local.primary.scaling.settings.warmupMs, d.instanceWarmup.localMs);
    assert.equal(d.instanceWarmup.localMs, 1_500);
  });

  it("the notification topic: the local notifier's TopicArn names the topic the AWS side creates", () => {
    const json = aws.json["dns-failover"] as Json;
    const topicName = props(json, "AWS::SNS::Topic").TopicName;
    const region = aws.regions["stayup-prod-dns-failover"];
    assert.ok(local.failover);
    assert.equal(
      local.failover.options.notifier.topicArn,
      `arn:aws:sns:${region}:${LOCAL_ACCOUNT_ID}:${topicName}`,
    );
  });
});
