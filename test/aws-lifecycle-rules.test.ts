/**
 * stayup's lifecycle rules (src/aws/compliance/lifecycle-rules.ts, issue 22): each one caught on a
 * template that breaks it, silent on one that does not; the rules pass on every topology and
 * environment of the repository's description, and stop a synthesis as a validation plugin.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { App, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import {
  amiChangesEveryDeploy,
  type CfnTemplate,
  type CheckedTemplate,
  checkLifecycle,
  ecrCountCanExpireRunningImage,
  lifecycleRules,
  nameSharedByTopologies,
  refreshWaitsOnInstances,
  reservedConcurrency,
  retainedFixedName,
  unusedNatGateway,
} from "../src/aws/compliance/lifecycle-rules.ts";
import { createStayupApp, synthesizeChecked, unacknowledgedFindings } from "../src/aws/compliance/checks.ts";
import { pinnedMachineImage } from "../src/aws/machine-image.ts";
import { synthesize } from "../src/aws/synth.ts";
import { topologies } from "../src/stack/index.ts";
import { description, inHostedZone } from "./aws-helpers.ts";
import { tempDir } from "./helpers.ts";

const region = "eu-west-3";
const checked = (stack: string, template: CfnTemplate): CheckedTemplate => ({ stack, region, template });

/** The templates of a CDK app built by `build`, synthesized without any plugin. */
function synthApp(build: (app: App) => void): CheckedTemplate[] {
  const app = new App({ outdir: tempDir("stayup-rules-") });
  build(app);
  const assembly = app.synth();
  return assembly.stacks.map((s) => ({ stack: s.stackName, region, template: s.template as CfnTemplate }));
}

const group = (updatePolicy?: Record<string, unknown>) =>
  checked("s", {
    Resources: {
      Group: {
        Type: "AWS::AutoScaling::AutoScalingGroup",
        Properties: { MinSize: "1", MaxSize: "2", NewInstancesProtectedFromScaleIn: true },
        UpdatePolicy: updatePolicy,
      },
    },
  });

describe("lifecycle rules: each caught on a template that breaks it", () => {
  it("retained resource with a fixed name: CDK's default log group (kept, named) is caught; unnamed or deleted is not", () => {
    const templates = synthApp((app) => {
      const s = new Stack(app, "logs", { env: { region } });
      new logs.LogGroup(s, "KeptNamed", { logGroupName: "/stayup/kept" });
      new logs.LogGroup(s, "KeptUnnamed", {});
      new logs.LogGroup(s, "DeletedNamed", {
        logGroupName: "/stayup/deleted",
        removalPolicy: RemovalPolicy.DESTROY,
      });
    });
    const found = retainedFixedName.check(templates);
    assert.equal(found.length, 1, JSON.stringify(found));
    assert.match(found[0]?.resource ?? "", /^KeptNamed/);
    assert.match(found[0]?.message ?? "", /"\/stayup\/kept" has DeletionPolicy Retain/);
  });

  it("protected instances under an instance refresh that would wait: unset or Wait is caught, Refresh/Terminate is not", () => {
    const unset = refreshWaitsOnInstances.check([
      group({ AutoScalingInstanceRefresh: { Preferences: { MinHealthyPercentage: 100 } } }),
    ]);
    assert.deepEqual(
      unset.map((v) => v.message),
      [
        "instance refresh ScaleInProtectedInstances is unset (Wait)",
        "instance refresh StandbyInstances is unset (Wait)",
      ],
    );
    const wait = refreshWaitsOnInstances.check([
      group({
        AutoScalingInstanceRefresh: {
          Preferences: { ScaleInProtectedInstances: "Wait", StandbyInstances: "Terminate" },
        },
      }),
    ]);
    assert.deepEqual(
      wait.map((v) => v.message),
      ["instance refresh ScaleInProtectedInstances is Wait"],
    );
    const fine = refreshWaitsOnInstances.check([
      group({
        AutoScalingInstanceRefresh: {
          Preferences: { ScaleInProtectedInstances: "Refresh", StandbyInstances: "Terminate" },
        },
      }),
    ]);
    assert.deepEqual(fine, []);
  });

  it("reserved Lambda concurrency is caught; a function without it is not", () => {
    const fn = (props: Record<string, unknown>) => ({
      Type: "AWS::Lambda::Function",
      Properties: { Handler: "x", ...props },
    });
    const found = reservedConcurrency.check([
      checked("s", { Resources: { Failover: fn({ ReservedConcurrentExecutions: 1 }), Other: fn({}) } }),
    ]);
    assert.deepEqual(
      found.map((v) => [v.resource, v.message]),
      [["Failover", "ReservedConcurrentExecutions 1"]],
    );
  });

  it("NAT gateways without a private subnet in use: caught until another stack places something in a subnet routed through them", () => {
    const network = (app: App) => {
      const s = new Stack(app, "network", { env: { region } });
      return new ec2.Vpc(s, "Vpc", {
        availabilityZones: ["eu-west-3a", "eu-west-3b"],
        natGateways: 2,
        subnetConfiguration: [
          { name: "public", subnetType: ec2.SubnetType.PUBLIC },
          { name: "private", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        ],
        restrictDefaultSecurityGroup: false,
      });
    };
    const alone = unusedNatGateway.check(synthApp((app) => void network(app)));
    assert.equal(alone.length, 2, JSON.stringify(alone));
    assert.match(alone[0]?.message ?? "", /nothing runs in the subnets routed through it/);
    // A consumer in another stack, in a private subnet: CDK exports the subnet and the consumer imports it.
    const used = unusedNatGateway.check(
      synthApp((app) => {
        const vpc = network(app);
        const consumer = new Stack(app, "consumer", { env: { region } });
        consumer.addDependency(vpc.stack);
        new ec2.CfnNetworkInterface(consumer, "Eni", { subnetId: vpc.privateSubnets[0]?.subnetId as string });
      }),
    );
    // The consumer sits behind the first AZ's NAT; the second AZ's NAT still serves nothing.
    assert.equal(used.length, 1, JSON.stringify(used));
  });

  it("an AMI that changes on every deploy: CDK's latestAmazonLinux2023 (an SSM parameter) is caught; a pinned AMI is not", () => {
    const found = amiChangesEveryDeploy.check(
      synthApp((app) => {
        const s = new Stack(app, "instances", { env: { region } });
        new ec2.LaunchTemplate(s, "Latest", { machineImage: ec2.MachineImage.latestAmazonLinux2023() });
        new ec2.LaunchTemplate(s, "Pinned", { machineImage: pinnedMachineImage(s, "/aws/service/x") });
        new ec2.LaunchTemplate(s, "AtLaunch", {
          machineImage: ec2.MachineImage.resolveSsmParameterAtLaunch("/aws/service/y"),
        });
      }),
    );
    assert.deepEqual(
      found.map((v) => v.resource.replace(/[0-9A-F]{8}$/, "")),
      ["Latest", "AtLaunch"],
    );
    assert.match(found[0]?.message ?? "", /AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>/);
  });

  it("a physical name shared by two topologies in different stacks is caught; one stack updated in place, or another region, is not", () => {
    const lb = (name: string) => ({
      Resources: { Alb: { Type: "AWS::ElasticLoadBalancingV2::LoadBalancer", Properties: { Name: name } } },
    });
    const shared = nameSharedByTopologies.check([
      { topology: "load-balanced", templates: [checked("stayup-dev-web", lb("stayup-dev-alb"))] },
      { topology: "ecs", templates: [checked("stayup-dev-service", lb("stayup-dev-alb"))] },
    ]);
    assert.equal(shared.length, 1);
    assert.match(shared[0]?.message ?? "", /stayup-dev-alb is claimed by load-balanced and ecs/);
    const sameStack = nameSharedByTopologies.check([
      { topology: "load-balanced", templates: [checked("stayup-dev-network", lb("x"))] },
      { topology: "ecs", templates: [checked("stayup-dev-network", lb("x"))] },
    ]);
    assert.deepEqual(sameStack, []);
    const otherRegion = nameSharedByTopologies.check([
      { topology: "load-balanced", templates: [checked("a", lb("x"))] },
      { topology: "ecs", templates: [{ stack: "b", region: "us-east-1", template: lb("x") }] },
    ]);
    assert.deepEqual(otherRegion, []);
  });

  it("an ECR count rule with no deployed-image rule above it (main's policy) is caught; with one, it is not", () => {
    const repository = (rules: unknown[]) =>
      checked("repo", {
        Resources: {
          Repository: {
            Type: "AWS::ECR::Repository",
            Properties: { LifecyclePolicy: { LifecyclePolicyText: JSON.stringify({ rules }) } },
          },
        },
      });
    const untagged = {
      rulePriority: 1,
      selection: { tagStatus: "untagged", countType: "sinceImagePushed", countUnit: "days", countNumber: 1 },
      action: { type: "expire" },
    };
    const count = (priority: number, prefix: string, n: number) => ({
      rulePriority: priority,
      selection: {
        tagStatus: "tagged",
        tagPrefixList: [prefix],
        countType: "imageCountMoreThan",
        countNumber: n,
      },
      action: { type: "expire" },
    });
    const mains = ecrCountCanExpireRunningImage.check([repository([untagged, count(2, "dev-", 3)])]);
    assert.equal(mains.length, 1);
    assert.match(mains[0]?.message ?? "", /rule 2 keeps the last \["dev-"\] pushes/);
    assert.deepEqual(
      ecrCountCanExpireRunningImage.check([
        repository([untagged, count(2, "deployed-dev-", 3), count(3, "dev-", 3)]),
      ]),
      [],
    );
  });

  it("as a validation plugin, a breaking resource stops synthesis with the rule's name", () => {
    const outdir = tempDir("stayup-rules-plugin-");
    const app = createStayupApp({ outdir, compliance: true });
    const s = new Stack(app, "planted", { env: { region } });
    new logs.LogGroup(s, "KeptNamed", { logGroupName: "/stayup/planted" });
    assert.throws(() => synthesizeChecked(app, "planted", true), /synthesis of planted failed/);
    const lifecycle = unacknowledgedFindings(outdir).filter((f) => f.plugin === "stayup-lifecycle");
    assert.deepEqual(lifecycle, [
      { plugin: "stayup-lifecycle", rule: retainedFixedName.id, resources: ["planted/KeptNamed/Resource"] },
    ]);
  });
});

describe("lifecycle rules: the repository's stacks pass them", { timeout: 600_000 }, () => {
  it("every topology, dev and prod (prod with a hosted zone: the failover Lambdas too), and no name shared across topologies", async () => {
    for (const env of ["dev", "prod"] as const) {
      const syntheses = [];
      for (const topology of topologies) {
        const stack = await description(env, (d) => {
          d.topology = topology;
          if (env === "prod") inHostedZone(d);
        });
        const result = synthesize(stack, path.join(tempDir("stayup-rules-repo-"), env), {
          imageTag: `${env}-0000000`,
        });
        const templates = result.stacks.map((s) => ({
          stack: s.name,
          region: s.region,
          template: JSON.parse(readFileSync(s.templateFile, "utf8")) as CfnTemplate,
        }));
        assert.deepEqual(checkLifecycle(templates), [], `${env} ${topology}`);
        syntheses.push({ topology, templates });
      }
      assert.deepEqual(nameSharedByTopologies.check(syntheses), [], env);
    }
    assert.equal(lifecycleRules.length, 6);
  });
});
