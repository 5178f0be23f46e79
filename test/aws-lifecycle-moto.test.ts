/**
 * A user's AWS life in moto_server, per topology and environment: deploy every stack in
 * dependency order, deploy again with a changed service (a new bundle or image and a changed
 * instance setting), destroy in reverse order, deploy again. Each step must complete, and what each
 * step changed is read back through the AWS SDK: the launch template's new version and user data,
 * the service's task definition (its new image on the template: moto keeps revision 1), stacks,
 * their load balancers and target groups gone after destroy and back after the redeploy, and what
 * destroy leaves behind equal to what `stayup destroy` reports it leaves.
 *
 * What moto does not model (an instance refresh waiting on scale-in protection, Lambda concurrency
 * quotas, the ECS service-linked role, Elastic IP quotas, immutable tags) is not proven here: those
 * are `stayup check`'s lifecycle rules and `stayup deploy`'s preflight (aws-preflight.test.ts).
 *
 * One moto_server for the file; each description is synthesized twice (as deployed, as changed),
 * before any step. The six lifecycles run one after another in the same account and regions: each
 * ends with its stacks destroyed, so the next starts from what its own destroy left.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DeleteAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
} from "@aws-sdk/client-auto-scaling";
import { CloudFormationClient, ListStackResourcesCommand } from "@aws-sdk/client-cloudformation";
import {
  CreateLaunchTemplateCommand,
  DeleteLaunchTemplateCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSubnetsCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { DescribeServicesCommand, DescribeTaskDefinitionCommand, ECSClient } from "@aws-sdk/client-ecs";
import {
  DescribeLoadBalancersCommand,
  DescribeTargetGroupsCommand,
  ElasticLoadBalancingV2Client,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { CreateHostedZoneCommand, Route53Client } from "@aws-sdk/client-route-53";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { retainedAfterDestroy, findRemaining } from "../src/aws/destroy.ts";
import type { EnvironmentName, StackDescription, Topology } from "../src/stack/index.ts";
import { description, inHostedZone, synth, type Synthesized } from "./aws-helpers.ts";
import {
  createStack,
  deleteStackAsCloudFormationWould,
  describeStack,
  MOTO_ACCOUNT,
  type Moto,
  publishAssets,
  standInOutputs,
  startMoto,
  type Template,
  type TemplateResource,
  updateStack,
  NOT_IN_MOTO_COMMON,
} from "./moto.ts";

/** Types moto's CloudFormation does not create (each is proven elsewhere: aws-moto-*.test.ts list where). */
const NOT_IN_MOTO: Record<string, string> = {
  ...NOT_IN_MOTO_COMMON,
  "AWS::Lambda::EventInvokeConfig": "aws-moto-deploy.test.ts",
  "Custom::S3AutoDeleteObjects": "aws-moto-deploy.test.ts",
  "AWS::AutoScaling::ScalingPolicy": "aws-moto-deploy.test.ts",
  "AWS::CloudWatch::Alarm": "aws-moto-deploy.test.ts",
  "AWS::ECS::CapacityProvider": "aws-moto-ecs.test.ts",
  "AWS::ECS::ClusterCapacityProviderAssociations": "aws-moto-ecs.test.ts",
  "AWS::ApplicationAutoScaling::ScalableTarget": "aws-moto-ecs.test.ts",
  "AWS::ApplicationAutoScaling::ScalingPolicy": "aws-moto-ecs.test.ts",
};

/** What `cdk deploy` would send, as moto's CloudFormation can take it (see aws-moto-deploy.test.ts). */
function adaptForMoto(template: Template, region: string): Template {
  const copy = structuredClone(template);
  for (const [id, resource] of Object.entries(copy.Resources)) {
    // A custom resource would make moto invoke its Lambda (in Docker); it acts only on deletion.
    if (resource.Type === "Custom::S3AutoDeleteObjects") delete copy.Resources[id];
    const props = resource.Properties ?? {};
    // moto's SSM reads a parameter's Tags as a list; CloudFormation's AWS::SSM::Parameter has a map.
    if (resource.Type === "AWS::SSM::Parameter") delete props.Tags;
    for (const [key, value] of Object.entries(props)) {
      const [target, attr] = (value as { "Fn::GetAtt"?: [string, string] })?.["Fn::GetAtt"] ?? [];
      const targetResource = target ? copy.Resources[target] : undefined;
      if (targetResource?.Type !== "AWS::CloudWatch::Alarm" || attr !== "Arn") continue;
      props[key] =
        `arn:aws:cloudwatch:${region}:${MOTO_ACCOUNT}:alarm:${targetResource.Properties?.AlarmName}`;
    }
  }
  standInOutputs(copy, NOT_IN_MOTO, (type) =>
    type === "AWS::ECS::CapacityProvider" ? "moto-stand-in-capacity-provider" : undefined,
  );
  return copy;
}

interface FileAssets {
  files: Record<
    string,
    { source: { path: string; packaging?: string }; destinations: Record<string, { objectKey: string }> }
  >;
}

/**
 * A new web-service bundle, as a code change makes one: the bundle's bytes change, so its asset
 * key (the hash of its content) changes in the template's user data. Uploads the new bundle under
 * the new key and returns the template that names it, and the new key.
 */
async function withNewBundle(
  synthesized: Synthesized,
  stackName: string,
  template: Template,
  s3: S3Client,
  bucket: string,
): Promise<{ template: Template; bundleKey: string } | undefined> {
  const manifest = JSON.parse(
    readFileSync(path.join(synthesized.outdir, `${stackName}.assets.json`), "utf8"),
  ) as FileAssets;
  const text = JSON.stringify(template);
  for (const asset of Object.values(manifest.files)) {
    if (asset.source.packaging === "zip") continue;
    const key = Object.values(asset.destinations)[0]?.objectKey ?? "";
    if (!key.endsWith(".mjs") || !text.includes(key)) continue;
    const body = `${readFileSync(path.join(synthesized.outdir, asset.source.path), "utf8")}\n// the next release\n`;
    const bundleKey = `${createHash("sha256").update(body).digest("hex")}.mjs`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: bundleKey, Body: body }));
    return { template: JSON.parse(text.replaceAll(key, bundleKey)) as Template, bundleKey };
  }
  return undefined;
}

/**
 * Each topology in regions of its own, so one lifecycle's leftovers (or failure) cannot meet
 * another's stacks: dev and prod differ by name, the topologies by region.
 */
const REGIONS: Record<Topology, { primary: string; zones: string[] }> = {
  "load-balanced": { primary: "eu-west-3", zones: ["eu-west-3a", "eu-west-3b", "eu-west-3c"] },
  "single-instance": { primary: "us-west-2", zones: ["us-west-2a", "us-west-2b", "us-west-2c"] },
  ecs: { primary: "eu-west-1", zones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] },
};
const SECONDARY = "us-east-1";
const sha = (n: number) => `${n}`.repeat(40).slice(0, 40);

interface Lifecycle {
  topology: Topology;
  env: EnvironmentName;
  /** As deployed first, and with the changed service. */
  first: Synthesized;
  changed: Synthesized;
  changedInstanceType: string;
}

describe(
  "the AWS lifecycle in moto_server: deploy, deploy a change, destroy, deploy again",
  { timeout: 600_000 },
  () => {
    let moto: Moto | undefined;
    const config = (region: string) => {
      assert.ok(moto, "moto_server started");
      return moto.clientConfig(region);
    };
    const lifecycles: Lifecycle[] = [];

    before(async () => {
      moto = await startMoto(["eu-west-3", SECONDARY, "us-west-2", "eu-west-1"]);
      for (const topology of ["load-balanced", "single-instance", "ecs"] as const) {
        for (const env of ["dev", "prod"] as const) {
          // The load-balanced topology with a hosted zone: Route 53 failover and its Lambdas too.
          let zone: { id: string; name: string } | undefined;
          if (topology === "load-balanced") {
            const created = await new Route53Client(config(SECONDARY)).send(
              new CreateHostedZoneCommand({
                Name: `${env}.example.com`,
                CallerReference: `lifecycle-${env}`,
              }),
            );
            zone = {
              id: (created.HostedZone?.Id ?? "").replace("/hostedzone/", ""),
              name: `${env}.example.com`,
            };
          }
          const place = (d: StackDescription) => {
            d.topology = topology;
            d.regions.primary = {
              name: REGIONS[topology].primary,
              availabilityZones: REGIONS[topology].zones,
            };
            if (zone) inHostedZone(d, zone);
          };
          const base = await description(env, place);
          const changedInstanceType = env === "dev" ? "t3.medium" : "t3.large";
          const changedDescription = await description(env, (d) => {
            place(d);
            d.environments[env].web.instanceTypes = [
              changedInstanceType,
              changedInstanceType.replace("t3.", "t3a."),
            ];
          });
          lifecycles.push({
            topology,
            env,
            first: synth(base, false, `${env}-${sha(1)}`),
            changed: synth(changedDescription, false, `${env}-${sha(2)}`),
            changedInstanceType,
          });
        }
      }
    });
    after(() => moto?.stop());

    const cfnFor = (region: string) => new CloudFormationClient(config(region));
    const kindOf = (l: Lifecycle, stackName: string) => stackName.slice(`stayup-${l.env}-`.length);

    /** Physical ids of a stack's resources of one type. */
    async function physicalIds(stackName: string, region: string, type: string): Promise<string[]> {
      const res = await cfnFor(region).send(new ListStackResourcesCommand({ StackName: stackName }));
      return (res.StackResourceSummaries ?? [])
        .filter((r) => r.ResourceType === type)
        .map((r) => r.PhysicalResourceId ?? "");
    }

    /**
     * moto's CloudFormation rejects a group with a MixedInstancesPolicy and capacity-provider
     * settings (the ECS container instances'): it is created through the Auto Scaling API instead,
     * and deleted through it before its stack (aws-moto-ecs.test.ts does the same).
     */
    function splitGroups(
      template: Template,
      topology: Topology,
    ): { template: Template; groups: TemplateResource[] } {
      if (topology !== "ecs") return { template, groups: [] };
      const copy = structuredClone(template);
      const groups: TemplateResource[] = [];
      for (const [id, r] of Object.entries(copy.Resources)) {
        if (r.Type === "AWS::AutoScaling::AutoScalingGroup") {
          groups.push(r);
          delete copy.Resources[id];
        }
      }
      return { template: copy, groups };
    }

    async function createGroupThroughApi(group: TemplateResource, region: string) {
      const p = group.Properties ?? {};
      const ec2 = new EC2Client(config(region));
      const subnets = ((await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? []).filter((s) =>
        s.Tags?.some((t) => t.Key === "aws-cdk:subnet-name" && t.Value === "web"),
      );
      const name = p.AutoScalingGroupName as string;
      const lt = await ec2.send(
        new CreateLaunchTemplateCommand({
          LaunchTemplateName: `${name}-moto`,
          LaunchTemplateData: { ImageId: "ami-12c6146b", InstanceType: "t3.small" },
        }),
      );
      await new AutoScalingClient(config(region)).send(
        new CreateAutoScalingGroupCommand({
          AutoScalingGroupName: name,
          MinSize: Number(p.MinSize),
          MaxSize: Number(p.MaxSize),
          DesiredCapacity: Number(p.MinSize),
          VPCZoneIdentifier: subnets.map((s) => s.SubnetId).join(","),
          LaunchTemplate: { LaunchTemplateId: lt.LaunchTemplate?.LaunchTemplateId, Version: "$Latest" },
        }),
      );
    }

    async function deleteGroupThroughApi(group: TemplateResource, region: string) {
      const name = group.Properties?.AutoScalingGroupName as string;
      await new AutoScalingClient(config(region)).send(
        new DeleteAutoScalingGroupCommand({ AutoScalingGroupName: name, ForceDelete: true }),
      );
      await new EC2Client(config(region)).send(
        new DeleteLaunchTemplateCommand({ LaunchTemplateName: `${name}-moto` }),
      );
    }

    async function deployAll(l: Lifecycle, s: Synthesized): Promise<void> {
      for (const stackName of s.order) {
        const region = s.regions[stackName] as string;
        await publishAssets(s.outdir, stackName, (r) => new S3Client({ ...config(r), forcePathStyle: true }));
        const { template, groups } = splitGroups(
          adaptForMoto(s.json[kindOf(l, stackName)] as Template, region),
          l.topology,
        );
        await createStack(cfnFor(region), stackName, template);
        for (const g of groups) await createGroupThroughApi(g, region);
      }
    }

    async function destroyAll(l: Lifecycle, s: Synthesized): Promise<void> {
      for (const stackName of [...s.order].reverse()) {
        const region = s.regions[stackName] as string;
        const { groups } = splitGroups(s.json[kindOf(l, stackName)] as Template, l.topology);
        for (const g of groups) await deleteGroupThroughApi(g, region);
        const c = config(region);
        await deleteStackAsCloudFormationWould(
          {
            cfn: new CloudFormationClient(c),
            ec2: new EC2Client(c),
            ecs: new ECSClient(c),
            elbv2: new ElasticLoadBalancingV2Client(c),
          },
          stackName,
          s.json[kindOf(l, stackName)] as Template,
        );
      }
    }

    /** The launch templates a stack created: latest version, its user data and instance type. */
    async function launchTemplates(stackName: string, region: string) {
      const ec2 = new EC2Client(config(region));
      const result = [];
      for (const id of await physicalIds(stackName, region, "AWS::EC2::LaunchTemplate")) {
        const versions =
          (await ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: id })))
            .LaunchTemplateVersions ?? [];
        const latest = versions.reduce((a, b) => ((a.VersionNumber ?? 0) >= (b.VersionNumber ?? 0) ? a : b));
        result.push({
          id,
          version: latest.VersionNumber ?? 0,
          userData: Buffer.from(latest.LaunchTemplateData?.UserData ?? "", "base64").toString("utf8"),
          instanceType: latest.LaunchTemplateData?.InstanceType,
        });
      }
      return result;
    }

    for (const topology of ["load-balanced", "single-instance", "ecs"] as const) {
      for (const env of ["dev", "prod"] as const) {
        describe(`${topology} ${env}`, () => {
          const PRIMARY = REGIONS[topology].primary;
          const lifecycle = () => {
            const l = lifecycles.find((x) => x.topology === topology && x.env === env);
            assert.ok(l, "synthesized");
            return l;
          };
          const webStack = () => {
            const kind =
              topology === "load-balanced"
                ? "web"
                : topology === "single-instance"
                  ? "single-instance"
                  : "cluster";
            return `stayup-${env}-${kind}`;
          };
          let firstTemplates: Awaited<ReturnType<typeof launchTemplates>> = [];

          it("deploy: every stack, in dependency order, is created", async () => {
            const l = lifecycle();
            await deployAll(l, l.first);
            for (const stackName of l.first.order) {
              const found = await describeStack(cfnFor(l.first.regions[stackName] as string), stackName);
              assert.equal(found?.status, "CREATE_COMPLETE", stackName);
            }
            firstTemplates = await launchTemplates(webStack(), PRIMARY);
            assert.ok(firstTemplates.length > 0, "the web instances' launch template exists");
          });

          it("deploy again with a changed service: the stacks that change are updated, and what they run changes", async () => {
            const l = lifecycle();
            const s3 = new S3Client({ ...config(PRIMARY), forcePathStyle: true });
            const bucket = `cdk-hnb659fds-assets-${MOTO_ACCOUNT}-${PRIMARY}`;
            const updated: string[] = [];
            let bundleKey: string | undefined;
            for (const stackName of l.changed.order) {
              const region = l.changed.regions[stackName] as string;
              await publishAssets(
                l.changed.outdir,
                stackName,
                (r) => new S3Client({ ...config(r), forcePathStyle: true }),
              );
              let template = l.changed.json[kindOf(l, stackName)] as Template;
              if (stackName === webStack() && topology !== "ecs") {
                const next = await withNewBundle(l.changed, stackName, template, s3, bucket);
                assert.ok(next, `${stackName} names the web-service bundle`);
                ({ template, bundleKey } = next);
              }
              const adapted = splitGroups(adaptForMoto(template, region), topology).template;
              if (await updateStack(cfnFor(region), stackName, adapted)) updated.push(stackName);
            }
            assert.ok(updated.includes(webStack()), `updated: ${updated.join(", ")}`);
            const now = await launchTemplates(webStack(), PRIMARY);
            assert.equal(now.length, firstTemplates.length);
            for (const [i, lt] of now.entries()) {
              const was = firstTemplates[i];
              assert.equal(lt.id, was?.id, "the same launch template, not a replacement");
              assert.ok(lt.version > (was?.version ?? 0), `a new version (${was?.version} → ${lt.version})`);
              assert.equal(lt.instanceType, l.changedInstanceType);
              if (bundleKey) {
                assert.ok(
                  lt.userData.includes(bundleKey),
                  "the new version's user data fetches the new bundle",
                );
                assert.ok(!was?.userData.includes(bundleKey));
              }
            }
            if (topology === "load-balanced") {
              // The group launches from the new version. (single-instance: moto's CloudFormation does not
              // re-resolve the group's LatestVersionNumber on update; the template names it, see aws-stacks.test.ts)
              const [groupName] = await physicalIds(
                webStack(),
                PRIMARY,
                "AWS::AutoScaling::AutoScalingGroup",
              );
              const group = (
                await new AutoScalingClient(config(PRIMARY)).send(
                  new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName as string] }),
                )
              ).AutoScalingGroups?.[0];
              const version =
                group?.LaunchTemplate?.Version ??
                group?.MixedInstancesPolicy?.LaunchTemplate?.LaunchTemplateSpecification?.Version;
              assert.equal(version, String(now[0]?.version));
            }
            if (topology === "ecs") {
              // The service's task definition is the one deployed, in its family. moto's CloudFormation
              // has no update for AWS::ECS::TaskDefinition (it keeps revision 1), so the new revision
              // is shown on the template: the image changed, and CloudFormation replaces a task
              // definition whose ContainerDefinitions change (a new revision, the service moved to it).
              const ecs = new ECSClient(config(PRIMARY));
              const service = (
                await ecs.send(
                  new DescribeServicesCommand({ cluster: `stayup-${env}`, services: [`stayup-${env}-web`] }),
                )
              ).services?.[0];
              const td = (
                await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: service?.taskDefinition }))
              ).taskDefinition;
              assert.equal(td?.family, `stayup-${env}-web`);
              const imageOf = (s: Synthesized) =>
                JSON.stringify(
                  Object.values((s.json.service as Template).Resources).find(
                    (r) => r.Type === "AWS::ECS::TaskDefinition",
                  )?.Properties?.ContainerDefinitions,
                );
              assert.match(imageOf(l.first), new RegExp(`:${env}-${sha(1)}`));
              assert.match(imageOf(l.changed), new RegExp(`:${env}-${sha(2)}`));
            }
          });

          it("destroy in reverse order: every stack is gone; what remains is what stayup destroy reports", async () => {
            const l = lifecycle();
            // The load balancers and target groups the stacks created (moto's CloudFormation would
            // leave the target groups: test/moto.ts deletes them as CloudFormation does).
            const balancing: { region: string; type: string; arn: string }[] = [];
            for (const stackName of l.changed.order) {
              const region = l.changed.regions[stackName] as string;
              for (const type of [
                "AWS::ElasticLoadBalancingV2::LoadBalancer",
                "AWS::ElasticLoadBalancingV2::TargetGroup",
              ])
                for (const arn of await physicalIds(stackName, region, type))
                  balancing.push({ region, type, arn });
            }
            if (topology !== "single-instance")
              assert.ok(balancing.length > 0, "the stacks have a load balancer and target groups");
            await destroyAll(l, l.changed);
            for (const stackName of l.changed.order) {
              assert.equal(
                await describeStack(cfnFor(l.changed.regions[stackName] as string), stackName),
                undefined,
              );
            }
            for (const { region, type, arn } of balancing) {
              const elb = new ElasticLoadBalancingV2Client(config(region));
              const described =
                type === "AWS::ElasticLoadBalancingV2::LoadBalancer"
                  ? elb.send(new DescribeLoadBalancersCommand({ LoadBalancerArns: [arn] }))
                  : elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: [arn] }));
              await assert.rejects(described, /NotFound|not found|One or more/i, `${type} ${arn} is gone`);
            }
            const retained = retainedAfterDestroy(
              l.changed.order.map((name) => ({
                stackName: name,
                region: l.changed.regions[name] as string,
                template: l.changed.json[kindOf(l, name)] as Template,
              })),
            );
            const remaining = await findRemaining(retained, (region) => config(region));
            // Final snapshots and log groups services create are listed, not looked up (moto has neither).
            assert.deepEqual(
              remaining
                .filter((r) => r.inMoto !== false)
                .map((r) => `${r.type} ${r.listedAs ?? r.name}`)
                .sort(),
              retained
                .filter((r) => r.inMoto !== false)
                .map((r) => `${r.type} ${r.name}`)
                .sort(),
            );
          });

          it("deploy again: every stack is created again", async () => {
            const l = lifecycle();
            await deployAll(l, l.changed);
            for (const stackName of l.changed.order) {
              const found = await describeStack(cfnFor(l.changed.regions[stackName] as string), stackName);
              assert.equal(found?.status, "CREATE_COMPLETE", stackName);
            }
            // Leave the account as the next lifecycle expects it: nothing deployed.
            await destroyAll(l, l.changed);
          });
        });
      }
    }
  },
);
