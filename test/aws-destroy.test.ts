/**
 * `stayup destroy`: refuses a protected environment before touching anything; with
 * --force-delete-protected lifts every protection that would make the deletion fail or hang
 * (against moto_server); says what is left and what it costs; finds the other topology's stacks;
 * without credentials says so instead of "nothing was created".
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  CloudFormationClient,
  DescribeStacksCommand,
  ListStackResourcesCommand,
  UpdateTerminationProtectionCommand,
} from "@aws-sdk/client-cloudformation";
import {
  DescribeLoadBalancerAttributesCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingV2Client,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import {
  formatLeftovers,
  liftDeletionProtection,
  otherTopologyStacks,
  priceLeftovers,
  retainedAfterDestroy,
} from "../src/aws/destroy.ts";
import { mockClient } from "aws-sdk-client-mock";
import { priceTable } from "../src/aws/cost/prices.ts";
import { description, noCredentials, synth } from "./aws-helpers.ts";
import { repoRoot, runCli, tempDir } from "./helpers.ts";
import { createStack, deleteStack, type Moto, startMoto, type Template } from "./moto.ts";

const config = path.join(repoRoot, "stayup.config.ts");

describe("stayup destroy without credentials or against a protected environment", () => {
  it("prod (deletion protection) is refused before anything, credentials included, and the flag is named", async () => {
    const dir = tempDir();
    const result = await runCli(["destroy", "--env", "prod", "--config", config], {
      cwd: dir,
      env: noCredentials(dir),
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /prod has deletion protection: nothing was touched/);
    assert.match(result.stderr, /stayup destroy --env prod --force-delete-protected/);
    assert.doesNotMatch(result.stderr, /credentials/, "refused before asking AWS anything");
  });

  it("destroy and outputs without credentials say credentials are missing, not that nothing was created", async () => {
    for (const command of [["destroy"], ["outputs"]]) {
      const dir = tempDir();
      const result = await runCli([...command, "--env", "dev", "--config", config], {
        cwd: dir,
        env: noCredentials(dir),
      });
      assert.equal(result.code, 1, command[0]);
      assert.match(result.stderr, /no usable AWS credentials/);
      assert.match(result.stderr, /credentials are missing/);
      assert.doesNotMatch(result.stderr, /nothing was created/, command[0]);
    }
  });
});

describe("what destroy leaves, and what it costs", () => {
  it("prod: the retained secret, buckets, log groups and final snapshots are listed and priced; the repository is not retained", async () => {
    const s = synth(
      await description("prod", (d) => void (d.topology = "ecs")),
      false,
      `prod-${"b".repeat(40)}`,
    );
    const retained = retainedAfterDestroy(
      s.order.map((name) => ({
        stackName: name,
        region: s.regions[name] as string,
        template: s.json[name.slice("stayup-prod-".length)] as Template,
      })),
    );
    const names = retained.map((r) => `${r.type} ${r.name}`);
    // Retained resources have no fixed name (issue 22 item 2): listed by stack and logical id, with
    // the prefix of the name CloudFormation generates.
    const unnamed = (type: string, stackName: string, logical: string) =>
      retained.find(
        (r) => r.type === type && r.stackName === stackName && r.name.startsWith(`${stackName}/${logical}`),
      );
    for (const [type, stackName, logical] of [
      ["AWS::SecretsManager::Secret", "stayup-prod-database", "RedisAuthToken"],
      ["AWS::Logs::LogGroup", "stayup-prod-network", "NetworkFlowLogs"],
      ["AWS::Logs::LogGroup", "stayup-prod-service", "Logs"],
      ["AWS::S3::Bucket", "stayup-prod-service", "AccessLogs"],
    ] as const) {
      const found = unnamed(type, stackName, logical);
      assert.ok(found, `${type} ${stackName}/${logical}* in ${names.join("; ")}`);
      assert.equal(found.generatedNamePrefix, found.name.replace("/", "-"));
    }
    assert.ok(names.includes("AWS::Logs::LogGroup /aws/ecs/containerinsights/stayup-prod/performance"));
    assert.ok(retained.some((r) => r.type === "AWS::ElastiCache::ReplicationGroup snapshot"));
    // The repository is emptied and deleted with its stack, in prod too (awslife).
    assert.ok(!retained.some((r) => r.type === "AWS::ECR::Repository"), names.join("; "));
    // As found after a destroy: a secret (priced per month), 10 GB of access logs, 1 GB of logs.
    const priced = priceLeftovers([
      {
        ...unnamed("AWS::SecretsManager::Secret", "stayup-prod-database", "RedisAuthToken")!,
        region: "us-east-1",
      },
      {
        ...unnamed("AWS::S3::Bucket", "stayup-prod-service", "AccessLogs")!,
        region: "us-east-1",
        sizeBytes: 10 * 1024 ** 3,
      },
      { ...unnamed("AWS::Logs::LogGroup", "stayup-prod-service", "Logs")!, sizeBytes: 1024 ** 3 },
    ]);
    assert.deepEqual(
      priced.map((p) => Math.round((p.monthlyUsd ?? NaN) * 100) / 100),
      [0.4, 0.23, 0.03],
    );
    const lines = formatLeftovers(priced);
    assert.match(lines[0] ?? "", /left in the account after destroy \(3\), about \$0\.66\/month/);
    assert.deepEqual(formatLeftovers([]), ["nothing is left in the account: nothing keeps costing"]);
  });

  it("dev leaves nothing billable in CloudFormation's hands (only log groups services create, which destroy deletes)", async () => {
    for (const topology of ["load-balanced", "single-instance", "ecs"] as const) {
      const s = synth(
        await description("dev", (d) => void (d.topology = topology)),
        false,
        `dev-${"c".repeat(40)}`,
      );
      const retained = retainedAfterDestroy(
        s.order.map((name) => ({
          stackName: name,
          region: s.regions[name] as string,
          template: s.json[name.slice("stayup-dev-".length)] as Template,
        })),
      );
      assert.deepEqual(
        retained.filter((r) => !r.why.includes("outside CloudFormation")).map((r) => `${r.type} ${r.name}`),
        [],
        topology,
      );
    }
  });
});

describe("--force-delete-protected against moto_server", { timeout: 120_000 }, () => {
  let moto: Moto | undefined;
  const region = "eu-west-3";
  before(async () => {
    moto = await startMoto([region]);
  });
  after(() => moto?.stop());

  it("clears termination protection, the load balancer's deletion protection and the group's scale-in protection; then the stack deletes", async () => {
    assert.ok(moto);
    const c = moto.clientConfig(region);
    const cfn = new CloudFormationClient(c);
    const template: Template = {
      Resources: {
        Vpc: { Type: "AWS::EC2::VPC", Properties: { CidrBlock: "10.9.0.0/16" } },
        SubnetA: {
          Type: "AWS::EC2::Subnet",
          Properties: { VpcId: { Ref: "Vpc" }, CidrBlock: "10.9.1.0/24", AvailabilityZone: "eu-west-3a" },
        },
        SubnetB: {
          Type: "AWS::EC2::Subnet",
          Properties: { VpcId: { Ref: "Vpc" }, CidrBlock: "10.9.2.0/24", AvailabilityZone: "eu-west-3b" },
        },
        Alb: {
          Type: "AWS::ElasticLoadBalancingV2::LoadBalancer",
          Properties: {
            Name: "stayup-prod-alb",
            Subnets: [{ Ref: "SubnetA" }, { Ref: "SubnetB" }],
            LoadBalancerAttributes: [{ Key: "deletion_protection.enabled", Value: "true" }],
          },
        },
        Lt: {
          Type: "AWS::EC2::LaunchTemplate",
          Properties: { LaunchTemplateData: { ImageId: "ami-12c6146b", InstanceType: "t3.small" } },
        },
        Group: {
          Type: "AWS::AutoScaling::AutoScalingGroup",
          Properties: {
            AutoScalingGroupName: "stayup-prod-web",
            MinSize: "2",
            MaxSize: "3",
            DesiredCapacity: "2",
            NewInstancesProtectedFromScaleIn: true,
            VPCZoneIdentifier: [{ Ref: "SubnetA" }, { Ref: "SubnetB" }],
            LaunchTemplate: {
              LaunchTemplateId: { Ref: "Lt" },
              Version: { "Fn::GetAtt": ["Lt", "LatestVersionNumber"] },
            },
          },
        },
      },
    };
    await createStack(cfn, "stayup-prod-web", template);
    const autoScaling = new AutoScalingClient(c);
    const groupBefore = (
      await autoScaling.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["stayup-prod-web"] }),
      )
    ).AutoScalingGroups?.[0];
    assert.equal(groupBefore?.Instances?.filter((i) => i.ProtectedFromScaleIn).length, 2);

    const lines: string[] = [];
    const lifted = await liftDeletionProtection(
      [
        { stackName: "stayup-prod-web", region },
        { stackName: "stayup-prod-gone", region },
      ],
      () => c,
      (l) => lines.push(l),
    );
    // moto does not implement UpdateTerminationProtection: termination protection is not on here.
    assert.deepEqual(lifted.terminationProtection, []);
    assert.equal(lifted.loadBalancers.length, 1);
    assert.deepEqual(lifted.groups, [{ name: "stayup-prod-web", instances: 2 }]);
    const elb = new ElasticLoadBalancingV2Client(c);
    const lb = (await elb.send(new DescribeLoadBalancersCommand({ Names: ["stayup-prod-alb"] })))
      .LoadBalancers?.[0];
    const attrs = (
      await elb.send(new DescribeLoadBalancerAttributesCommand({ LoadBalancerArn: lb?.LoadBalancerArn }))
    ).Attributes;
    assert.equal(attrs?.find((a) => a.Key === "deletion_protection.enabled")?.Value, "false");
    const groupAfter = (
      await autoScaling.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["stayup-prod-web"] }),
      )
    ).AutoScalingGroups?.[0];
    assert.equal(groupAfter?.NewInstancesProtectedFromScaleIn, false);
    assert.deepEqual(
      groupAfter?.Instances?.map((i) => i.ProtectedFromScaleIn),
      [false, false],
    );
    assert.equal(lines.length, 2, lines.join("\n"));

    // The other topology's stacks are found by name (destroy --topology ecs warns about this one).
    const others = await otherTopologyStacks("stayup-prod", "ecs", [region], () => c);
    assert.deepEqual(others, [{ topology: "load-balanced", stackName: "stayup-prod-web", region }]);
    await deleteStack(cfn, "stayup-prod-web");
    assert.deepEqual(await otherTopologyStacks("stayup-prod", "ecs", [region], () => c), []);
  });
});

describe("destroy: stack termination protection (SDK mocks: moto does not implement UpdateTerminationProtection)", () => {
  const config = (region: string) => ({
    region,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  });
  const described = (name: string, protectedStack: boolean) => ({
    Stacks: [
      {
        StackName: name,
        StackStatus: "CREATE_COMPLETE" as const,
        CreationTime: new Date(0),
        EnableTerminationProtection: protectedStack,
      },
    ],
  });

  it("turns it off on each protected stack, before anything else of that stack; unprotected and missing stacks are left alone", async () => {
    const cfn = mockClient(CloudFormationClient);
    try {
      cfn
        .on(DescribeStacksCommand, { StackName: "stayup-prod-network" })
        .resolves(described("stayup-prod-network", true));
      cfn
        .on(DescribeStacksCommand, { StackName: "stayup-prod-dns-failover" })
        .resolves(described("stayup-prod-dns-failover", false));
      cfn.on(DescribeStacksCommand, { StackName: "stayup-prod-gone" }).rejects(
        Object.assign(new Error("Stack with id stayup-prod-gone does not exist"), {
          name: "ValidationError",
        }),
      );
      cfn
        .on(UpdateTerminationProtectionCommand)
        .resolves({ StackId: "arn:aws:cloudformation:eu-west-3:1:stack/x/1" });
      cfn.on(ListStackResourcesCommand).resolves({ StackResourceSummaries: [] });
      const lines: string[] = [];
      const lifted = await liftDeletionProtection(
        [
          { stackName: "stayup-prod-network", region: "eu-west-3" },
          { stackName: "stayup-prod-dns-failover", region: "us-east-1" },
          { stackName: "stayup-prod-gone", region: "eu-west-3" },
        ],
        config,
        (l) => lines.push(l),
      );
      assert.deepEqual(lifted.terminationProtection, ["stayup-prod-network"]);
      assert.deepEqual(
        cfn.commandCalls(UpdateTerminationProtectionCommand).map((c) => c.args[0].input),
        [{ StackName: "stayup-prod-network", EnableTerminationProtection: false }],
      );
      // The protection goes before the stack's resources are touched (read, then changed).
      const order = cfn.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
      assert.deepEqual(order.slice(0, 3), [
        "DescribeStacksCommand",
        "UpdateTerminationProtectionCommand",
        "ListStackResourcesCommand",
      ]);
      assert.deepEqual(lines, ["stayup-prod-network: termination protection off"]);
    } finally {
      cfn.restore();
    }
  });

  it("a refused call (no permission) stops it there: nothing of that stack is changed after it", async () => {
    const cfn = mockClient(CloudFormationClient);
    try {
      cfn.on(DescribeStacksCommand).resolves(described("stayup-prod-network", true));
      cfn.on(UpdateTerminationProtectionCommand).rejects(
        Object.assign(new Error("not authorized to perform: cloudformation:UpdateTerminationProtection"), {
          name: "AccessDenied",
        }),
      );
      await assert.rejects(
        liftDeletionProtection([{ stackName: "stayup-prod-network", region: "eu-west-3" }], config),
        /UpdateTerminationProtection/,
      );
      assert.equal(cfn.commandCalls(ListStackResourcesCommand).length, 0);
    } finally {
      cfn.restore();
    }
  });
});

describe("destroy: leftovers are priced from the cost module's one price table", () => {
  it("each storage price is the table's; a region without one is priced at us-east-1's and says so", () => {
    const leftover = (type: string, region: string, sizeBytes?: number) => ({
      stackName: "stayup-prod-x",
      region,
      type,
      name: "n",
      why: "w",
      ...(sizeBytes === undefined ? {} : { sizeBytes }),
    });
    const GiB = 1024 ** 3;
    const [logs, ecr, snapshot, cache, unknown] = priceLeftovers([
      leftover("AWS::Logs::LogGroup", "eu-west-3", 2 * GiB),
      leftover("AWS::ECR::Repository", "eu-west-3", 2 * GiB),
      leftover("AWS::EC2::Volume snapshot", "us-east-1", 2 * GiB),
      leftover("AWS::ElastiCache::ReplicationGroup snapshot", "us-east-1"),
      leftover("AWS::Some::Thing", "us-east-1", GiB),
    ]);
    const us = priceTable["us-east-1"];
    assert.equal(logs?.monthlyUsd, 2 * (us?.["logs:storage-gb-month"]?.usd ?? NaN));
    assert.match(logs?.basis ?? "", /us-east-1's price, eu-west-3 has none/);
    assert.equal(ecr?.monthlyUsd, 2 * (priceTable["eu-west-3"]?.["ecr:gb-month"]?.usd ?? NaN));
    assert.doesNotMatch(ecr?.basis ?? "", /us-east-1's price/);
    assert.equal(snapshot?.monthlyUsd, 2 * (us?.["ebs:snapshot-gb-month"]?.usd ?? NaN));
    assert.equal(cache?.monthlyUsd, undefined, "size unknown: not priced at 0");
    assert.match(cache?.basis ?? "", /size unknown/);
    assert.equal(unknown?.basis, "unpriced");
  });
});
