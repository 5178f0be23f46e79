/**
 * Issue 22: what AWS does on the second deploy, on destroy and redeploy, and in a new account, read
 * off each stack with CDK assertions (Template.fromStack), one behaviour per test. The AWS behaviour
 * each rests on, and its source, is in docs/aws-lifecycle.md.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import type { Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { addStayupStacks } from "../src/aws/app.ts";
import type { StayupStacks } from "../src/aws/stacks.ts";
import { createStayupApp } from "../src/aws/compliance/checks.ts";
import { deployedImagesKept, deployedTagPrefix, imageTagPrefix } from "../src/aws/ecs/repository.ts";
import { ECS_AMAZON_LINUX_2023_PARAMETER, OFFLINE_PLACEHOLDER_AMI } from "../src/aws/machine-image.ts";
import type { StackDescription, Topology } from "../src/stack/index.ts";
import { redisReplicasToAcknowledge } from "../src/stack/redis-durability.ts";
import { description, inHostedZone } from "./aws-helpers.ts";
import { tempDir } from "./helpers.ts";

type Env = "dev" | "prod";

/** The stacks of one environment and topology, built in-process (no account: an offline synthesis). */
async function build(
  env: Env,
  topology: Topology,
  change?: (d: StackDescription) => void,
  context: Record<string, unknown> = {},
): Promise<StayupStacks> {
  const stack = await description(env, (d) => {
    d.topology = topology;
    change?.(d);
  });
  const app = createStayupApp({ outdir: path.join(tempDir("stayup-lifecycle-"), env) });
  for (const [key, value] of Object.entries(context)) app.node.setContext(key, value);
  return addStayupStacks(app, stack, path.join(tempDir("stayup-lifecycle-bundle-"), "aws-bundle"));
}

/** The stack, which the test needs: a missing one fails the test here, by name. */
function must<T extends Stack>(stack: T | undefined, what: string): T {
  assert.ok(stack, `no ${what} stack`);
  return stack;
}

type Resource = { Type: string; Properties?: Record<string, unknown>; DeletionPolicy?: string };
const resources = (template: Template, type: string): [string, Resource][] =>
  Object.entries(template.findResources(type) as Record<string, Resource>);

describe("AWS lifecycle (issue 22): the stacks", () => {
  it("1. prod web groups (both regions) do not protect new instances from scale in: they scale in, and failback can shrink the secondary", async () => {
    const stacks = await build("prod", "load-balanced");
    for (const s of [must(stacks.web, "web"), must(stacks.secondaryWeb, "secondary web")]) {
      Template.fromStack(s).hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", {
        NewInstancesProtectedFromScaleIn: false,
      });
    }
  });

  it("1. prod web groups' instance refresh refreshes protected instances and terminates standby ones instead of waiting", async () => {
    const stacks = await build("prod", "load-balanced");
    Template.fromStack(must(stacks.web, "web")).hasResource("AWS::AutoScaling::AutoScalingGroup", {
      UpdatePolicy: {
        AutoScalingInstanceRefresh: {
          Preferences: Match.objectLike({
            ScaleInProtectedInstances: "Refresh",
            StandbyInstances: "Terminate",
            MinHealthyPercentage: 100,
          }),
        },
      },
    });
  });

  it("1. prod ECS container instances (protected, managed termination protection) are replaced by a refresh that does not wait on them", async () => {
    const stacks = await build("prod", "ecs");
    const cluster = Template.fromStack(must(stacks.cluster, "cluster"));
    cluster.hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", {
      NewInstancesProtectedFromScaleIn: true,
    });
    cluster.hasResource("AWS::AutoScaling::AutoScalingGroup", {
      UpdatePolicy: {
        AutoScalingInstanceRefresh: {
          Preferences: Match.objectLike({
            ScaleInProtectedInstances: "Refresh",
            StandbyInstances: "Terminate",
          }),
        },
      },
    });
  });

  it("2. dev: every log group of every topology is deleted with its stack", async () => {
    let seen = 0;
    for (const topology of ["load-balanced", "single-instance", "ecs"] as const) {
      const stacks = await build("dev", topology);
      for (const s of stacks.ordered) {
        for (const [id, r] of resources(Template.fromStack(s), "AWS::Logs::LogGroup")) {
          assert.equal(r.DeletionPolicy, "Delete", `${s.stackName} ${id}`);
          seen++;
        }
      }
    }
    // Flow logs ×3, web, single instance, ECS tasks.
    assert.ok(seen >= 6, `log groups seen: ${seen}`);
  });

  it("2. prod: a log group kept after destroy has no fixed name (the next create would find it)", async () => {
    let kept = 0;
    for (const topology of ["load-balanced", "single-instance", "ecs"] as const) {
      const stacks = await build("prod", topology, inHostedZone);
      for (const s of stacks.ordered) {
        for (const [id, r] of resources(Template.fromStack(s), "AWS::Logs::LogGroup")) {
          assert.equal(r.DeletionPolicy, "Retain", `${s.stackName} ${id}: prod keeps its logs`);
          assert.equal(r.Properties?.LogGroupName, undefined, `${s.stackName} ${id}`);
          kept++;
        }
      }
    }
    assert.ok(kept >= 8, `log groups seen: ${kept} (flow logs, web, failover, failback, tasks...)`);
  });

  it("2. the Redis AUTH token's secret has no fixed name (prod keeps it on destroy; its name would block the next create)", async () => {
    for (const env of ["dev", "prod"] as const) {
      const stacks = await build(env, "load-balanced");
      const [[, secret] = ["", undefined]] = resources(
        Template.fromStack(must(stacks.database, "database")),
        "AWS::SecretsManager::Secret",
      );
      assert.ok(secret, env);
      assert.equal(secret.Properties?.Name, undefined, env);
    }
  });

  it("2. prod's ECR repository (fixed name: CI pushes there) is emptied and deleted with its stack, not kept to block the next create", async () => {
    const stacks = await build("prod", "ecs");
    Template.fromStack(must(stacks.repository, "repository")).hasResource("AWS::ECR::Repository", {
      DeletionPolicy: "Delete",
      Properties: Match.objectLike({ RepositoryName: "stayup-prod-web", EmptyOnDelete: true }),
    });
  });

  it("4. the failover and failback Lambdas reserve no concurrency (a new account has none to spare)", async () => {
    const stacks = await build("prod", "load-balanced", inHostedZone);
    const functions = resources(
      Template.fromStack(must(stacks.dnsFailover, "dns-failover")),
      "AWS::Lambda::Function",
    );
    const handlers = functions.filter(([, f]) =>
      /failover|failback/.test(String(f.Properties?.FunctionName)),
    );
    assert.equal(handlers.length, 2);
    for (const [id, f] of handlers) assert.equal(f.Properties?.ReservedConcurrentExecutions, undefined, id);
  });

  it("4. single instance (prod): no NAT gateway, so the instance's Elastic IP is the only one it allocates", async () => {
    const stacks = await build("prod", "single-instance");
    const network = Template.fromStack(stacks.network);
    network.resourceCountIs("AWS::EC2::NatGateway", 0);
    network.resourceCountIs("AWS::EC2::EIP", 0);
    Template.fromStack(must(stacks.singleInstance, "single instance")).resourceCountIs("AWS::EC2::EIP", 1);
  });

  it("6. ECS container instances: offline, a fixed placeholder AMI; never the SSM parameter read at deploy time", async () => {
    const stacks = await build("prod", "ecs");
    const cluster = Template.fromStack(must(stacks.cluster, "cluster"));
    cluster.hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({ ImageId: OFFLINE_PLACEHOLDER_AMI }),
    });
    assert.deepEqual(
      Object.values(cluster.findParameters("*")).filter((p) => /Image::Id/.test(String(p.Type))),
      [],
    );
  });

  it("6. ECS container instances, account known: the AMI is looked up once into the context (cdk.context.json) and taken from there", async () => {
    const saved = process.env.CDK_DEFAULT_ACCOUNT;
    process.env.CDK_DEFAULT_ACCOUNT = "123456789012";
    try {
      // First synthesis: CDK reports the lookup it needs (the CDK CLI performs it and records it).
      const first = await build("prod", "ecs");
      const missing = must(first.cluster, "cluster").node.root as unknown as {
        synth(): { manifest: { missing?: { key: string; props: { parameterName?: string } }[] } };
      };
      const lookups = missing.synth().manifest.missing ?? [];
      const lookup = lookups.find((m) => m.props.parameterName === ECS_AMAZON_LINUX_2023_PARAMETER);
      assert.ok(lookup, `lookups asked: ${JSON.stringify(lookups)}`);
      // With the recorded answer, the template holds that very AMI, whatever SSM says later.
      const pinned = await build("prod", "ecs", undefined, { [lookup.key]: "ami-0123456789abcdef0" });
      Template.fromStack(must(pinned.cluster, "cluster")).hasResourceProperties("AWS::EC2::LaunchTemplate", {
        LaunchTemplateData: Match.objectLike({ ImageId: "ami-0123456789abcdef0" }),
      });
    } finally {
      if (saved === undefined) delete process.env.CDK_DEFAULT_ACCOUNT;
      else process.env.CDK_DEFAULT_ACCOUNT = saved;
    }
  });

  it("7. ECS tasks get STAYUP_REDIS_WAIT_REPLICAS and the write hold, as the instances do", async () => {
    const stack = await description("prod");
    const stacks = await build("prod", "ecs");
    Template.fromStack(must(stacks.service, "service")).hasResourceProperties("AWS::ECS::TaskDefinition", {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([
            { Name: "STAYUP_REDIS_WAIT_REPLICAS", Value: String(redisReplicasToAcknowledge(stack)) },
            { Name: "STAYUP_REDIS_WRITE_HOLD_MS", Value: "55000" },
          ]),
        }),
      ],
    });
    assert.equal(redisReplicasToAcknowledge(stack), 1);
  });

  it("7. ECS container instances: the agent blocks tasks from IMDS (ECS_AWSVPC_BLOCK_IMDS=true)", async () => {
    const stacks = await build("prod", "ecs");
    const [[, template] = ["", undefined]] = resources(
      Template.fromStack(must(stacks.cluster, "cluster")),
      "AWS::EC2::LaunchTemplate",
    );
    assert.match(
      JSON.stringify((template?.Properties?.LaunchTemplateData as { UserData?: unknown }).UserData),
      /echo ECS_AWSVPC_BLOCK_IMDS=true >> \/etc\/ecs\/ecs.config/,
    );
  });

  it("9. the load-balanced and ecs topologies name their load balancers apart", async () => {
    const names: string[] = [];
    for (const [topology, kind] of [
      ["load-balanced", "web"],
      ["ecs", "service"],
    ] as const) {
      const stacks = await build("dev", topology);
      const [[, lb] = ["", undefined]] = resources(
        Template.fromStack(must(stacks[kind], kind)),
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
      );
      names.push(String(lb?.Properties?.Name));
    }
    assert.deepEqual(names, ["stayup-dev-alb", "stayup-dev-ecs-alb"]);
  });

  it("10. ECR: the last images that ran in a successful deploy are kept by a rule above the count of pushes", async () => {
    const stack = await description("dev");
    const stacks = await build("dev", "ecs");
    const [[, repo] = ["", undefined]] = resources(
      Template.fromStack(must(stacks.repository, "repository")),
      "AWS::ECR::Repository",
    );
    const policy = (repo?.Properties?.LifecyclePolicy as { LifecyclePolicyText: string }).LifecyclePolicyText;
    const rules = (
      JSON.parse(policy) as { rules: { rulePriority: number; selection: Record<string, unknown> }[] }
    ).rules;
    const deployed = rules.find(
      (r) => JSON.stringify(r.selection.tagPrefixList) === JSON.stringify([deployedTagPrefix(stack)]),
    );
    const pushed = rules.find(
      (r) => JSON.stringify(r.selection.tagPrefixList) === JSON.stringify([imageTagPrefix(stack)]),
    );
    assert.ok(deployed && pushed, policy);
    assert.ok(deployed.rulePriority < pushed.rulePriority, "the deployed rule is evaluated first");
    assert.equal(deployed.selection.countNumber, deployedImagesKept);
    assert.ok(
      !deployedTagPrefix(stack).startsWith(imageTagPrefix(stack)),
      "the push count never selects a deployed tag",
    );
  });
});
