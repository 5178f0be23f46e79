import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import { mockClient } from "aws-sdk-client-mock";
import { type AlarmEvent, failback, failover } from "../src/aws/failover/handlers.ts";

const alarm = (name: string, value: AlarmEvent["alarmData"]["state"]["value"]): AlarmEvent => ({
  source: "aws.cloudwatch",
  alarmArn: `arn:aws:cloudwatch:us-east-1:123456789012:alarm:${name}`,
  alarmData: { alarmName: name, state: { value, reason: "Threshold Crossed" } },
});

describe("failover and failback Lambda handlers (mocked AWS SDK)", () => {
  const autoScaling = mockClient(AutoScalingClient);
  const sns = mockClient(SNSClient);
  const saved = { ...process.env };
  beforeEach(() => {
    autoScaling.reset();
    sns.reset();
    autoScaling.on(UpdateAutoScalingGroupCommand).resolves({});
    observe({ min: 0, desired: 0 });
    sns.on(PublishCommand).resolves({ MessageId: "m-1" });
    Object.assign(process.env, {
      SECONDARY_REGION: "us-east-1",
      SECONDARY_GROUP_NAME: "stayup-prod-web-secondary",
      ACTIVE_MIN_SIZE: "3",
      ACTIVE_DESIRED_CAPACITY: "3",
      STANDBY_MIN_SIZE: "0",
      STANDBY_DESIRED_CAPACITY: "0",
      TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:stayup-prod-notifications",
    });
  });
  afterEach(() => {
    process.env = { ...saved };
  });
  /** What DescribeAutoScalingGroups answers for the secondary group. */
  function observe(size: { min: number; desired: number } | undefined) {
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: size
        ? [
            {
              AutoScalingGroupName: "stayup-prod-web-secondary",
              MinSize: size.min,
              DesiredCapacity: size.desired,
              MaxSize: 6,
            } as never,
          ]
        : [],
    });
  }

  it("failover scales the secondary group to its active size and notifies", async () => {
    const result = await failover(alarm("primary-unhealthy", "ALARM"));
    assert.equal(result.action, "failover");
    const calls = autoScaling.commandCalls(UpdateAutoScalingGroupCommand);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]?.args[0].input, {
      AutoScalingGroupName: "stayup-prod-web-secondary",
      MinSize: 3,
      DesiredCapacity: 3,
    });
    const published = sns.commandCalls(PublishCommand);
    assert.equal(published.length, 1);
    assert.equal(
      published[0]?.args[0].input.TopicArn,
      "arn:aws:sns:us-east-1:123456789012:stayup-prod-notifications",
    );
    assert.match(published[0]?.args[0].input.Subject ?? "", /^stayup failover:/);
  });

  it("failback runs its own action: the secondary back to standby, a failback notification", async () => {
    observe({ min: 3, desired: 4 });
    const result = await failback(alarm("primary-healthy-again", "ALARM"));
    assert.equal(result.action, "failback");
    assert.deepEqual(autoScaling.commandCalls(UpdateAutoScalingGroupCommand)[0]?.args[0].input, {
      AutoScalingGroupName: "stayup-prod-web-secondary",
      MinSize: 0,
      DesiredCapacity: 0,
    });
    assert.match(sns.commandCalls(PublishCommand)[0]?.args[0].input.Subject ?? "", /^stayup failback:/);
  });

  it("an alarm returning to OK changes nothing", async () => {
    for (const handler of [failover, failback]) {
      const result = await handler(alarm("x", "OK"));
      assert.equal(result.action, "none");
    }
    assert.equal(autoScaling.commandCalls(UpdateAutoScalingGroupCommand).length, 0);
    assert.equal(sns.commandCalls(PublishCommand).length, 0);
  });

  it("a missing or bad setting is a clear error, and nothing is changed", async () => {
    delete process.env.SECONDARY_GROUP_NAME;
    await assert.rejects(failover(alarm("x", "ALARM")), /missing environment variable SECONDARY_GROUP_NAME/);
    process.env.SECONDARY_GROUP_NAME = "g";
    process.env.ACTIVE_DESIRED_CAPACITY = "three";
    await assert.rejects(failover(alarm("x", "ALARM")), /ACTIVE_DESIRED_CAPACITY must be a whole number/);
    assert.equal(autoScaling.commandCalls(UpdateAutoScalingGroupCommand).length, 0);
  });

  it("a failed AWS call fails the invocation (so the alarm action is retried), without notifying", async () => {
    autoScaling.on(UpdateAutoScalingGroupCommand).rejects(new Error("Throttling"));
    await assert.rejects(failover(alarm("primary-unhealthy", "ALARM")), /Throttling/);
    assert.equal(sns.commandCalls(PublishCommand).length, 0);
  });

  it("both read the group before resizing it", async () => {
    await failover(alarm("primary-unhealthy", "ALARM"));
    const describe = autoScaling.commandCalls(DescribeAutoScalingGroupsCommand);
    assert.equal(describe.length, 1);
    assert.deepEqual(describe[0]?.args[0].input, { AutoScalingGroupNames: ["stayup-prod-web-secondary"] });
    const order = autoScaling.calls().map((c) => (c.args[0] as object).constructor.name);
    assert.deepEqual(order, ["DescribeAutoScalingGroupsCommand", "UpdateAutoScalingGroupCommand"]);
  });

  it("failover on a group already active changes nothing, and still notifies (a retry after a failed publish)", async () => {
    observe({ min: 3, desired: 3 });
    const result = await failover(alarm("primary-unhealthy", "ALARM"));
    assert.equal(result.action, "none");
    assert.match(result.reason, /already at min 3, desired 3/);
    assert.equal(autoScaling.commandCalls(UpdateAutoScalingGroupCommand).length, 0);
    const published = sns.commandCalls(PublishCommand);
    assert.equal(published.length, 1);
    assert.match(published[0]?.args[0].input.Subject ?? "", /already at min 3, desired 3/);
    assert.equal(JSON.parse(published[0]?.args[0].input.Message ?? "{}").changed, false);
  });

  it("failover never shrinks a group that scaled out beyond the active size", async () => {
    observe({ min: 1, desired: 5 });
    await failover(alarm("primary-unhealthy", "ALARM"));
    assert.deepEqual(autoScaling.commandCalls(UpdateAutoScalingGroupCommand)[0]?.args[0].input, {
      AutoScalingGroupName: "stayup-prod-web-secondary",
      MinSize: 3,
      DesiredCapacity: 5,
    });
  });

  it("failback on a group already at standby changes nothing", async () => {
    observe({ min: 0, desired: 0 });
    const result = await failback(alarm("primary-healthy-again", "ALARM"));
    assert.equal(result.action, "none");
    assert.equal(autoScaling.commandCalls(UpdateAutoScalingGroupCommand).length, 0);
  });

  it("run twice, failover resizes once: the second run observes the first's result", async () => {
    observe({ min: 0, desired: 0 });
    await failover(alarm("primary-unhealthy", "ALARM"));
    observe({ min: 3, desired: 3 });
    await failover(alarm("primary-unhealthy", "ALARM"));
    assert.equal(autoScaling.commandCalls(UpdateAutoScalingGroupCommand).length, 1);
  });

  it("a group that cannot be found fails the invocation (retried, then the on-failure destination), changing nothing", async () => {
    observe(undefined);
    await assert.rejects(
      failover(alarm("primary-unhealthy", "ALARM")),
      /group stayup-prod-web-secondary was not found in us-east-1/,
    );
    assert.equal(autoScaling.commandCalls(UpdateAutoScalingGroupCommand).length, 0);
    assert.equal(sns.commandCalls(PublishCommand).length, 0);
  });
});
