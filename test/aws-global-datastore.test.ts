/**
 * redis.crossRegion "replica" on AWS: the description refuses node types a Global Datastore does not
 * run on; CDK renders the datastore over the primary's group, the secondary's group joins it, and
 * the failover Lambdas may promote that datastore only; their promotion runs against a mocked SDK.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { afterEach, before, beforeEach, describe, it } from "node:test";
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  DescribeGlobalReplicationGroupsCommand,
  ElastiCacheClient,
  FailoverGlobalReplicationGroupCommand,
} from "@aws-sdk/client-elasticache";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import { mockClient } from "aws-sdk-client-mock";
import { failback, failover } from "../src/aws/failover/handlers.ts";
import { globalDatastoreNodeTypeProblem } from "../src/stack/cross-region-redis.ts";
import { StackValidationError } from "../src/stack/index.ts";
import {
  description,
  globalDatastoreLambdaEnvironment,
  globalDatastoreMembers,
  resourcesOf,
  type Synthesized,
  synth,
  withGlobalDatastore,
} from "./aws-helpers.ts";

describe("cross-region Redis: the description", () => {
  it("refuses a node type a Global Datastore does not run on, with the reason and the fix", async () => {
    await assert.rejects(
      description("prod", (d) => {
        d.environments.prod.redis = { nodeType: "cache.t4g.small", multiAz: true, crossRegion: "replica" };
      }),
      (error: unknown) =>
        error instanceof StackValidationError &&
        error.problems.some(
          (p) =>
            p.path === "environments.prod.redis.nodeType" &&
            /M and R node types, large and above/.test(p.message) &&
            /cache\.r7g\.large/.test(p.message),
        ),
    );
    assert.match(globalDatastoreNodeTypeProblem("cache.m7g.medium") ?? "", /not medium/);
    assert.equal(globalDatastoreNodeTypeProblem("cache.r6gd.xlarge"), undefined);
    assert.equal(globalDatastoreNodeTypeProblem("cache.m5.large"), undefined);
  });

  it("defaults to none: nothing crosses unless the description says so", async () => {
    const stack = await description("dev");
    assert.equal(stack.redis.crossRegion, "none");
  });
});

describe("cross-region Redis: CDK", () => {
  let out: Synthesized;
  before(async () => {
    out = synth(await description("prod", withGlobalDatastore));
  });

  it("renders the Global Datastore over the primary region's group, and the secondary's group joins it", () => {
    const [, datastore] =
      resourcesOf(
        out.json.database as Record<string, unknown>,
        "AWS::ElastiCache::GlobalReplicationGroup",
      )[0] ?? [];
    assert.ok(datastore, "a Global Datastore in the primary region's database stack");
    const props = datastore.Properties as Record<string, unknown>;
    assert.equal(props.GlobalReplicationGroupIdSuffix, "stayup-prod-redis");
    const members = props.Members as { Role: string; ReplicationGroupRegion: string }[];
    assert.deepEqual(
      members.map((m) => [m.Role, m.ReplicationGroupRegion]),
      [["PRIMARY", "eu-west-3"]],
    );
    const secondaryKind = Object.keys(out.json).find((k) => k.includes("database") && k !== "database");
    assert.ok(secondaryKind, Object.keys(out.json).join(", "));
    const [found] = resourcesOf(
      out.json[secondaryKind] as Record<string, unknown>,
      "AWS::ElastiCache::ReplicationGroup",
    );
    const group = found?.[1];
    assert.ok(group?.Properties?.GlobalReplicationGroupId, "the secondary's group is a member");
  });

  it("the failover Lambdas may promote that datastore only, told which groups by their environment", () => {
    const dns = out.json["dns-failover"] as Record<string, unknown>;
    assert.ok(dns, Object.keys(out.json).join(", "));
    const functions = resourcesOf(dns, "AWS::Lambda::Function").filter(([, f]) =>
      JSON.stringify(f.Properties).includes("GLOBAL_REPLICATION_GROUP_ID"),
    );
    assert.equal(functions.length, 2, "failover and failback");
    const policies = resourcesOf(dns, "AWS::IAM::Policy").map(([, p]) => JSON.stringify(p.Properties));
    const granting = policies.filter((p) => p.includes("elasticache:FailoverGlobalReplicationGroup"));
    assert.equal(granting.length, 2);
    for (const p of granting) {
      const statements = (
        JSON.parse(p) as { PolicyDocument: { Statement: { Action: string[]; Resource: unknown }[] } }
      ).PolicyDocument.Statement.filter((s) => JSON.stringify(s.Action).includes("elasticache:"));
      for (const s of statements) {
        const resource = JSON.stringify(s.Resource);
        assert.match(resource, /globalreplicationgroup:/, "the datastore's ARN, not *");
        assert.doesNotMatch(resource, /"\*"/);
      }
    }
  });

  it("stayup cost prices the Global Datastore: the nodes in both regions and the cross-region transfer", async () => {
    const { estimateCost, readTemplates } = await import("../src/aws/cost/estimate.ts");
    const estimate = estimateCost(
      readTemplates(
        out.order.map((name) => ({
          name,
          region: out.regions[name] as string,
          templateFile: path.join(out.outdir, `${name}.template.json`),
        })),
      ),
    );
    assert.deepEqual(estimate.unpriced, [], JSON.stringify(estimate.unpriced));
    const text = JSON.stringify(estimate.items);
    assert.match(text, /cache\.r7g\.large/);
    assert.match(text, /Global Datastore/);
  });
});

describe("the failover Lambdas promote the Global Datastore (mocked SDK)", () => {
  const autoScaling = mockClient(AutoScalingClient);
  const sns = mockClient(SNSClient);
  const elastiCache = mockClient(ElastiCacheClient);
  const saved = { ...process.env };
  const alarm = (value: "ALARM" | "OK") => ({ alarmData: { alarmName: "a", state: { value } } });
  beforeEach(() => {
    for (const m of [autoScaling, sns, elastiCache]) m.reset();
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [{ AutoScalingGroupName: "g", MinSize: 0, DesiredCapacity: 0 } as never],
    });
    sns.on(PublishCommand).resolves({});
    elastiCache.on(FailoverGlobalReplicationGroupCommand).resolves({});
    Object.assign(process.env, {
      ...globalDatastoreLambdaEnvironment,
      ACTIVE_MIN_SIZE: "3",
      ACTIVE_DESIRED_CAPACITY: "3",
    });
  });
  afterEach(() => {
    process.env = { ...saved };
  });

  it("failover promotes the secondary region's member before anything else is reported done", async () => {
    elastiCache.on(DescribeGlobalReplicationGroupsCommand).resolves(globalDatastoreMembers("eu-west-3"));
    const result = await failover(alarm("ALARM"));
    const [call] = elastiCache.commandCalls(FailoverGlobalReplicationGroupCommand);
    assert.deepEqual(call?.args[0].input, {
      GlobalReplicationGroupId: "ldgnf-stayup-prod-redis",
      PrimaryRegion: "us-east-1",
      PrimaryReplicationGroupId: "stayup-prod-redis-us",
    });
    assert.equal(result.redis?.promoted, true);
  });

  it("a retried failover finds the secondary already primary and promotes nothing", async () => {
    elastiCache.on(DescribeGlobalReplicationGroupsCommand).resolves(globalDatastoreMembers("us-east-1"));
    const result = await failover(alarm("ALARM"));
    assert.equal(elastiCache.commandCalls(FailoverGlobalReplicationGroupCommand).length, 0);
    assert.equal(result.redis?.promoted, false);
  });

  it("failback waits for the primary region to catch up: it throws (Lambda retries) until associated", async () => {
    elastiCache
      .on(DescribeGlobalReplicationGroupsCommand)
      .resolves(globalDatastoreMembers("us-east-1", "associating"));
    await assert.rejects(failback(alarm("ALARM")), /not yet caught up/);
    assert.equal(elastiCache.commandCalls(FailoverGlobalReplicationGroupCommand).length, 0);
    elastiCache.on(DescribeGlobalReplicationGroupsCommand).resolves(globalDatastoreMembers("us-east-1"));
    const result = await failback(alarm("ALARM"));
    const [call] = elastiCache.commandCalls(FailoverGlobalReplicationGroupCommand);
    assert.equal(call?.args[0].input.PrimaryRegion, "eu-west-3");
    assert.equal(result.redis?.promoted, true);
  });
});
