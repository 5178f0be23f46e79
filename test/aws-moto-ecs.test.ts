/**
 * Deploys the ecs topology's prod templates into moto_server with the CloudFormation API, in
 * dependency order, checks the cluster, task definition, service and repository through the AWS
 * SDK, then runs `stayup destroy`'s ECS teardown against them. What moto's CloudFormation does not
 * create is listed with where it is asserted instead.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
} from "@aws-sdk/client-auto-scaling";
import { CloudFormationClient, ListStackResourcesCommand } from "@aws-sdk/client-cloudformation";
import { CreateLaunchTemplateCommand, DescribeSubnetsCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  DescribeClustersCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ECSClient,
} from "@aws-sdk/client-ecs";
import { DescribeRepositoriesCommand, ECRClient } from "@aws-sdk/client-ecr";
import { prepareEcsTeardown } from "../src/aws/ecs/destroy.ts";
import { description, synth } from "./aws-helpers.ts";
import {
  createStack,
  type Moto,
  NOT_IN_MOTO_COMMON,
  standInOutputs,
  startMoto,
  type Template,
  type TemplateResource,
} from "./moto.ts";

const TAG = "prod-0123abcd";

/** Resource types moto's CloudFormation cannot create, and where their properties are asserted. */
const NOT_IN_MOTO: Record<string, string> = {
  ...NOT_IN_MOTO_COMMON,
  "AWS::ECS::CapacityProvider":
    "aws-ecs.test.ts: managed scaling at the env's target, termination protection, draining",
  "AWS::ECS::ClusterCapacityProviderAssociations":
    "aws-ecs.test.ts: in the cluster stack, before the service",
  "AWS::ApplicationAutoScaling::ScalableTarget": "aws-ecs.test.ts: task count between the env's min and max",
  "AWS::ApplicationAutoScaling::ScalingPolicy": "aws-ecs.test.ts: target tracking on the service's CPU",
  "AWS::AutoScaling::AutoScalingGroup":
    "this file: created through the Auto Scaling API from the template's properties (moto's CloudFormation rejects a MixedInstancesPolicy group)",
};

/** Outputs that point at a resource moto cannot create get a stand-in value of the right shape. */
function adaptForMoto(template: Template): { template: Template; standIns: string[] } {
  const copy = structuredClone(template);
  const standIns: string[] = [];
  // moto's SSM reads a parameter's Tags as a list; CloudFormation's AWS::SSM::Parameter has a map.
  // Tags are stayup's Project/stack/environment labels; dropped here, they stay in the template.
  for (const resource of Object.values(copy.Resources)) {
    if (resource.Type === "AWS::SSM::Parameter") delete resource.Properties?.Tags;
  }
  standIns.push(
    ...standInOutputs(copy, NOT_IN_MOTO, (type) =>
      type === "AWS::ECS::CapacityProvider" ? "stayup-prod-ec2" : undefined,
    ),
  );
  return { template: copy, standIns };
}

describe("deploy the ecs topology into moto_server", { timeout: 180_000 }, () => {
  let moto: Moto | undefined;
  const clientConfig = () => {
    assert.ok(moto, "moto_server started");
    return moto.clientConfig();
  };
  let synthesized: ReturnType<typeof synth>;
  const standIns: string[] = [];

  before(async () => {
    moto = await startMoto(["eu-west-3"]);
    // The ECS-optimized AMI's public parameter (/aws/service/ecs/...) is one moto publishes itself,
    // as AWS does: the cluster's launch template resolves it at deploy time.
    synthesized = synth(
      await description("prod", (d) => {
        d.topology = "ecs";
      }),
      false,
      TAG,
    );
    const cfn = new CloudFormationClient(clientConfig());
    for (const stackName of synthesized.order) {
      const kind = stackName.slice("stayup-prod-".length);
      const template = synthesized.json[kind] as Template;
      const adapted = adaptForMoto(template);
      // moto's CloudFormation cannot create this group: it is created below through the API.
      const groups = Object.entries(adapted.template.Resources).filter(
        ([, r]) => r.Type === "AWS::AutoScaling::AutoScalingGroup",
      );
      for (const [id] of groups) delete adapted.template.Resources[id];
      standIns.push(...adapted.standIns);
      await createStack(cfn, stackName, adapted.template);
      for (const [, group] of groups) await createGroup(group, stackName);
    }
  });
  after(() => moto?.stop());

  /** The container instances' group from the template's own properties, references resolved. */
  async function createGroup(group: TemplateResource, stackName: string) {
    const p = group.Properties ?? {};
    const ec2 = new EC2Client(clientConfig());
    const subnets = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
    const web = subnets
      .filter((s) => s.Tags?.some((t) => t.Key === "aws-cdk:subnet-name" && t.Value === "web"))
      .map((s) => s.SubnetId as string);
    const zones = (p.VPCZoneIdentifier as unknown[]).length;
    assert.equal(zones, web.length, "one private subnet per AZ");
    const lt = await ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: `${stackName}-moto`,
        LaunchTemplateData: { ImageId: "ami-12c6146b", InstanceType: "t3.small" },
      }),
    );
    await new AutoScalingClient(clientConfig()).send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: p.AutoScalingGroupName as string,
        MinSize: Number(p.MinSize),
        MaxSize: Number(p.MaxSize),
        DesiredCapacity: Number(p.MinSize),
        VPCZoneIdentifier: web.join(","),
        NewInstancesProtectedFromScaleIn: p.NewInstancesProtectedFromScaleIn as boolean,
        LaunchTemplate: { LaunchTemplateId: lt.LaunchTemplate?.LaunchTemplateId, Version: "$Latest" },
      }),
    );
  }

  it("the cluster, the awsvpc task definition with its image and the service on the cluster exist", async () => {
    const d = await description("prod", (x) => void (x.topology = "ecs"));
    const ecs = new ECSClient(clientConfig());
    const clusters = await ecs.send(new DescribeClustersCommand({ clusters: ["stayup-prod"] }));
    assert.equal(clusters.clusters?.[0]?.clusterName, "stayup-prod");
    const services = await ecs.send(
      new DescribeServicesCommand({ cluster: "stayup-prod", services: ["stayup-prod-web"] }),
    );
    const service = services.services?.[0];
    assert.ok(service, "the service exists");
    assert.equal(service.desiredCount, d.ecs.tasks.desired);
    const taskDef = await ecs.send(
      new DescribeTaskDefinitionCommand({ taskDefinition: service.taskDefinition }),
    );
    const td = taskDef.taskDefinition;
    assert.equal(td?.family, "stayup-prod-web");
    // moto's CloudFormation drops a task definition's NetworkMode (it reports bridge); awsvpc is
    // asserted on the template here and in aws-ecs.test.ts.
    const [, templateTaskDef] =
      Object.entries((synthesized.json.service as Template).Resources).find(
        ([, r]) => r.Type === "AWS::ECS::TaskDefinition",
      ) ?? [];
    assert.equal(templateTaskDef?.Properties?.NetworkMode, "awsvpc");
    const container = td?.containerDefinitions?.[0];
    assert.equal(container?.cpu, d.ecs.task.cpuUnits);
    assert.equal(container?.memory, d.ecs.task.memoryMiB);
    assert.ok(container?.image?.endsWith(`/stayup-prod-web:${TAG}`), container?.image);
    assert.deepEqual(container?.secrets?.map((s) => s.name).sort(), [
      "STAYUP_REDIS_AUTH_TOKEN",
      "STAYUP_REDIS_URL",
    ]);
  });

  it("the repository exists under the environment's name with immutable tags", async () => {
    const ecr = new ECRClient(clientConfig());
    const repo = (await ecr.send(new DescribeRepositoriesCommand({ repositoryNames: ["stayup-prod-web"] })))
      .repositories?.[0];
    assert.equal(repo?.imageTagMutability, "IMMUTABLE");
    // moto's CloudFormation ignores ImageScanningConfiguration; scan on push is on the template.
    const [, templateRepo] =
      Object.entries((synthesized.json.repository as Template).Resources).find(
        ([, r]) => r.Type === "AWS::ECR::Repository",
      ) ?? [];
    assert.deepEqual(templateRepo?.Properties?.ImageScanningConfiguration, { ScanOnPush: true });
    // moto's CloudFormation ignores a repository's LifecyclePolicy too: the rules are asserted on
    // the template in aws-ecs.test.ts ("ECR: untagged expire after a day; keep the last 3 dev-...").
    assert.match(repo?.repositoryUri ?? "", /\.dkr\.ecr\.eu-west-3\.amazonaws\.com\/stayup-prod-web$/);
  });

  it("every resource moto did not create is of a type listed, with where it is proven instead", async () => {
    const cfn = new CloudFormationClient(clientConfig());
    const missing = new Set<string>();
    for (const stackName of synthesized.order) {
      const kind = stackName.slice("stayup-prod-".length);
      const created = new Set(
        (
          (await cfn.send(new ListStackResourcesCommand({ StackName: stackName }))).StackResourceSummaries ??
          []
        ).map((r) => r.LogicalResourceId),
      );
      for (const [id, r] of Object.entries((synthesized.json[kind] as Template).Resources)) {
        if (!created.has(id)) missing.add(r.Type);
      }
    }
    for (const type of missing)
      assert.ok(NOT_IN_MOTO[type], `${type} was not created by moto and is not listed`);
    assert.ok(standIns.length > 0);
  });

  it("stayup destroy's teardown: the service at 0 tasks, scale-in protection cleared on every container instance", async () => {
    const autoScaling = new AutoScalingClient(clientConfig());
    const before = (
      await autoScaling.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["stayup-prod-ecs"] }),
      )
    ).AutoScalingGroups?.[0];
    const protectedBefore = (before?.Instances ?? []).filter((i) => i.ProtectedFromScaleIn).length;
    assert.ok(protectedBefore >= 2, `prod's instances start protected (${protectedBefore})`);
    const d = await description("prod", (x) => void (x.topology = "ecs"));
    const ecs = new ECSClient(clientConfig());
    const report = await prepareEcsTeardown(d, { ecs, autoScaling }, { pollMs: 50, stopTimeoutMs: 5000 });
    assert.equal(report.serviceScaledToZero, true);
    assert.equal(report.instancesUnprotected.length, protectedBefore);
    const service = (
      await ecs.send(new DescribeServicesCommand({ cluster: "stayup-prod", services: ["stayup-prod-web"] }))
    ).services?.[0];
    assert.equal(service?.desiredCount, 0);
    const group = (
      await autoScaling.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["stayup-prod-ecs"] }),
      )
    ).AutoScalingGroups?.[0];
    assert.equal(group?.NewInstancesProtectedFromScaleIn, false);
    assert.deepEqual(
      (group?.Instances ?? []).map((i) => i.ProtectedFromScaleIn),
      (group?.Instances ?? []).map(() => false),
    );
    // Run twice (a retried destroy): nothing left to unprotect, no error.
    const again = await prepareEcsTeardown(d, { ecs, autoScaling }, { pollMs: 50, stopTimeoutMs: 5000 });
    assert.equal(again.instancesUnprotected.length, 0);
  });
});
