/**
 * Deploys the synthesized dev templates into moto_server (a real AWS API emulator) with the
 * CloudFormation API, in dependency order, and checks through the AWS SDK that the result is wired
 * as intended. moto's CloudFormation cannot create some resource types; each is named below, and
 * what it would have proven is asserted on the template instead (here and in aws-stacks.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  CloudFormationClient,
  DescribeStacksCommand,
  ListExportsCommand,
  ListStackResourcesCommand,
} from "@aws-sdk/client-cloudformation";
import {
  DescribeNatGatewaysCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  EC2Client,
  type IpPermission,
} from "@aws-sdk/client-ec2";
import {
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeTargetGroupsCommand,
  ElasticLoadBalancingV2Client,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import {
  CloudWatchClient,
  type ComparisonOperator,
  DescribeAlarmsCommand,
  PutMetricAlarmCommand,
  type Statistic,
} from "@aws-sdk/client-cloudwatch";
import { GetFunctionConfigurationCommand, LambdaClient } from "@aws-sdk/client-lambda";
import {
  CreateHostedZoneCommand,
  GetHealthCheckCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
} from "@aws-sdk/client-route-53";
import { S3Client } from "@aws-sdk/client-s3";
import { description, inHostedZone, synth } from "./aws-helpers.ts";
import {
  createStack,
  MOTO_ACCOUNT,
  type Moto,
  NOT_IN_MOTO_COMMON,
  publishAssets,
  standInOutputs,
  startMoto,
  type Template,
  type TemplateResource,
} from "./moto.ts";
import { REGION_HEALTH_CHECK_PATH } from "../src/stack/derived.ts";

/** Resource types moto's CloudFormation cannot create, and where their properties are asserted. */
const NOT_IN_MOTO: Record<string, string> = {
  ...NOT_IN_MOTO_COMMON,
  "AWS::Lambda::EventInvokeConfig":
    "aws-hardening.test.ts: each failover function retries twice, then publishes to the failover topic",
  "Custom::S3AutoDeleteObjects":
    "aws-hardening.test.ts: dev's log bucket is emptied on destroy (moto would have to run the handler in Docker)",
  "AWS::AutoScaling::ScalingPolicy":
    "aws-stacks.test.ts: target tracking on average CPU at the description's target",
  "AWS::CloudWatch::Alarm":
    "this file: created through moto's CloudWatch API from the template's own properties, references resolved",
};

/**
 * Outputs that point at a resource moto cannot create get a stand-in value of the right shape. So
 * do references to an alarm's ARN (a Lambda permission's source): the ARN an alarm will have is
 * known from its name, and the alarm is created afterwards through the CloudWatch API.
 */
function adaptForMoto(template: Template, region: string): { template: Template; standIns: string[] } {
  const copy = structuredClone(template);
  const standIns: string[] = [];
  // A custom resource would make moto invoke its Lambda (in Docker); it acts only on deletion anyway.
  for (const [id, resource] of Object.entries(copy.Resources)) {
    if (resource.Type === "Custom::S3AutoDeleteObjects") delete copy.Resources[id];
  }
  for (const [id, resource] of Object.entries(copy.Resources)) {
    const props = (resource as { Properties?: Record<string, unknown> }).Properties ?? {};
    // CloudFormation gives an SSM parameter's Tags as a map; moto's CloudFormation reads a list.
    if (resource.Type === "AWS::SSM::Parameter" && props.Tags && !Array.isArray(props.Tags)) {
      props.Tags = Object.entries(props.Tags as Record<string, unknown>).map(([Key, Value]) => ({
        Key,
        Value,
      }));
    }
    for (const [key, value] of Object.entries(props)) {
      const [target, attr] = (value as { "Fn::GetAtt"?: [string, string] })?.["Fn::GetAtt"] ?? [];
      const targetResource = target ? (copy.Resources[target] as TemplateResource | undefined) : undefined;
      if (targetResource?.Type !== "AWS::CloudWatch::Alarm" || attr !== "Arn") continue;
      props[key] =
        `arn:aws:cloudwatch:${region}:${MOTO_ACCOUNT}:alarm:${targetResource.Properties?.AlarmName}`;
      standIns.push(`${id}.${key} (AWS::CloudWatch::Alarm)`);
    }
  }
  standIns.push(...standInOutputs(copy, NOT_IN_MOTO));
  return { template: copy, standIns };
}

describe("deploy into moto_server", { timeout: 180_000 }, () => {
  let moto: Moto | undefined;
  const region = "eu-west-3";
  const clientConfig = () => {
    assert.ok(moto, "moto_server started");
    return moto.clientConfig();
  };
  let synthesized: ReturnType<typeof synth>;
  const outputs: Record<string, Record<string, string>> = {};
  const standIns: string[] = [];
  let zoneId = "";
  let assetsPublished = 0;
  let alarmsCreated = 0;

  /**
   * The template's alarms, created through CloudWatch's API (moto's CloudFormation has no alarms)
   * with every reference resolved against what the stack created: a check that they point at the
   * health check and the functions that exist, not just at logical ids.
   */
  async function createAlarms(template: Template, stackName: string, stackRegion: string): Promise<number> {
    const alarms = Object.values(template.Resources).filter((r) => r.Type === "AWS::CloudWatch::Alarm");
    if (alarms.length === 0) return 0;
    const cfn = new CloudFormationClient({ ...clientConfig(), region: stackRegion });
    const physical = new Map(
      (
        (await cfn.send(new ListStackResourcesCommand({ StackName: stackName }))).StackResourceSummaries ?? []
      ).map((r) => [r.LogicalResourceId, r.PhysicalResourceId]),
    );
    const lambda = new LambdaClient({ ...clientConfig(), region: stackRegion });
    const resolve = async (value: unknown): Promise<string> => {
      if (typeof value === "string") return value;
      const ref = (value as { Ref?: string }).Ref;
      if (ref) {
        const id = physical.get(ref);
        assert.ok(id, `${ref} was created`);
        return id;
      }
      const [target, attr] = (value as { "Fn::GetAtt": [string, string] })["Fn::GetAtt"];
      assert.equal(template.Resources[target]?.Type, "AWS::Lambda::Function", `alarm action ${target}`);
      assert.equal(attr, "Arn");
      const config = await lambda.send(
        new GetFunctionConfigurationCommand({ FunctionName: physical.get(target) }),
      );
      assert.ok(config.FunctionArn, `${target} was created`);
      return config.FunctionArn;
    };
    const cloudwatch = new CloudWatchClient({ ...clientConfig(), region: stackRegion });
    for (const { Properties: p = {} } of alarms) {
      await cloudwatch.send(
        new PutMetricAlarmCommand({
          AlarmName: p.AlarmName as string,
          AlarmDescription: p.AlarmDescription as string,
          Namespace: p.Namespace as string,
          MetricName: p.MetricName as string,
          Statistic: p.Statistic as Statistic,
          Period: p.Period as number,
          EvaluationPeriods: p.EvaluationPeriods as number,
          Threshold: p.Threshold as number,
          ComparisonOperator: p.ComparisonOperator as ComparisonOperator,
          TreatMissingData: p.TreatMissingData as string,
          Dimensions: await Promise.all(
            (p.Dimensions as { Name: string; Value: unknown }[]).map(async (d) => ({
              Name: d.Name,
              Value: await resolve(d.Value),
            })),
          ),
          AlarmActions: await Promise.all((p.AlarmActions as unknown[]).map(resolve)),
        }),
      );
    }
    return alarms.length;
  }

  before(async () => {
    moto = await startMoto([region, "us-east-1"]);
    // The user's public zone, made beforehand as the description asks; its id goes into the description.
    const zone = await new Route53Client({ ...clientConfig(), region: "us-east-1" }).send(
      new CreateHostedZoneCommand({ Name: "example.com", CallerReference: `stayup-test-${Date.now()}` }),
    );
    zoneId = (zone.HostedZone?.Id ?? "").replace("/hostedzone/", "");
    synthesized = synth(
      await description("dev", (d) => inHostedZone(d, { id: zoneId, name: "example.com" })),
    );
    for (const stackName of synthesized.order) {
      const stackRegion = synthesized.regions[stackName] as string;
      const cfn = new CloudFormationClient({ ...clientConfig(), region: stackRegion });
      const kind = stackName.slice("stayup-dev-".length);
      assetsPublished += await publishAssets(
        synthesized.outdir,
        stackName,
        (r) => new S3Client({ ...clientConfig(), region: r, forcePathStyle: true }),
      );
      const adapted = adaptForMoto(synthesized.json[kind] as Template, stackRegion);
      standIns.push(...adapted.standIns);
      outputs[kind] = await createStack(cfn, stackName, adapted.template);
      alarmsCreated += await createAlarms(synthesized.json[kind] as Template, stackName, stackRegion);
    }
  });
  after(() => moto?.stop());

  it("all seven stacks (three regions' worth: primary, secondary, us-east-1 failover) were created in dependency order; only outputs of unsupported types were stood in", async () => {
    assert.equal(synthesized.order.length, 7);
    assert.ok(assetsPublished >= 3, `assets published: ${assetsPublished}`);
    assert.equal(alarmsCreated, 2);
    const exports = await new CloudFormationClient(clientConfig()).send(new ListExportsCommand({}));
    assert.ok((exports.Exports ?? []).some((e) => e.Name?.startsWith("stayup-dev-network:")));
    const secondary = await new CloudFormationClient({ ...clientConfig(), region: "us-east-1" }).send(
      new DescribeStacksCommand({ StackName: "stayup-dev-secondary-web" }),
    );
    assert.equal(secondary.Stacks?.[0]?.StackStatus, "CREATE_COMPLETE");
    // Per region: the Redis endpoint's address and port, and the AUTH token's secret; in us-east-1
    // the alarm ARN each alarm's Lambda permission names.
    assert.deepEqual(standIns.map((s) => s.replace(/^.*\((.*)\)$/, "$1")).sort(), [
      "AWS::CloudWatch::Alarm",
      "AWS::CloudWatch::Alarm",
      "AWS::ElastiCache::ReplicationGroup",
      "AWS::ElastiCache::ReplicationGroup",
      "AWS::ElastiCache::ReplicationGroup",
      "AWS::ElastiCache::ReplicationGroup",
      "AWS::SecretsManager::Secret",
      "AWS::SecretsManager::Secret",
    ]);
  });

  it("the group runs in the three private subnets and is attached to the target group", async () => {
    const ec2 = new EC2Client(clientConfig());
    const subnets = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
    const tier = (name: string) =>
      new Set(
        subnets
          .filter((s) => s.Tags?.some((t) => t.Key === "aws-cdk:subnet-name" && t.Value === name))
          .map((s) => s.SubnetId),
      );
    const web = tier("web");
    assert.equal(web.size, 3);
    assert.equal(new Set(subnets.filter((s) => web.has(s.SubnetId)).map((s) => s.AvailabilityZone)).size, 3);
    const groups = (
      await new AutoScalingClient(clientConfig()).send(new DescribeAutoScalingGroupsCommand({}))
    ).AutoScalingGroups;
    const group = groups?.find((g) => g.AutoScalingGroupName === "stayup-dev-web");
    assert.ok(group, "the web group exists under its environment-qualified name");
    const groupSubnets = (group.VPCZoneIdentifier ?? "").split(",");
    assert.equal(groupSubnets.length, 3);
    for (const s of groupSubnets) assert.ok(web.has(s), `${s} is a private web subnet`);
    assert.equal(group.HealthCheckType, "ELB");
    assert.equal(group.MinSize, 2);
    assert.equal(group.MaxSize, 4);
    const elb = new ElasticLoadBalancingV2Client(clientConfig());
    const tg = (await elb.send(new DescribeTargetGroupsCommand({ Names: ["stayup-dev-web"] })))
      .TargetGroups?.[0];
    assert.ok(tg?.TargetGroupArn);
    assert.deepEqual(group.TargetGroupARNs, [tg.TargetGroupArn]);
  });

  it("the target group's health check and deregistration delay are the description's", async () => {
    const d = await description("dev");
    const elb = new ElasticLoadBalancingV2Client(clientConfig());
    const tg = (await elb.send(new DescribeTargetGroupsCommand({ Names: ["stayup-dev-web"] })))
      .TargetGroups?.[0];
    assert.equal(tg?.HealthCheckPath, d.targetGroup.healthCheck.path);
    assert.equal(tg?.HealthCheckIntervalSeconds, d.targetGroup.healthCheck.aws.intervalSeconds);
    assert.equal(tg?.HealthCheckTimeoutSeconds, d.targetGroup.healthCheck.aws.timeoutSeconds);
    assert.equal(tg?.HealthyThresholdCount, d.targetGroup.healthCheck.healthyThreshold);
    assert.equal(tg?.UnhealthyThresholdCount, d.targetGroup.healthCheck.unhealthyThreshold);
    assert.equal(tg?.Port, d.webService.port);
    // moto's CloudFormation never reads TargetGroupAttributes (its TargetGroup handler takes only
    // the health-check properties), so the deregistration delay is asserted on the template.
    const template = synthesized.json.web as {
      Resources: Record<
        string,
        { Type: string; Properties: { TargetGroupAttributes?: { Key: string; Value: string }[] } }
      >;
    };
    const tgResource = Object.values(template.Resources).find(
      (r) => r.Type === "AWS::ElasticLoadBalancingV2::TargetGroup",
    );
    assert.equal(
      tgResource?.Properties.TargetGroupAttributes?.find(
        (a) => a.Key === "deregistration_delay.timeout_seconds",
      )?.Value,
      String(d.targetGroup.deregistrationDelaySeconds),
    );
  });

  it("the internet-facing load balancer's listener forwards port 80 to the target group", async () => {
    const elb = new ElasticLoadBalancingV2Client(clientConfig());
    const lb = (await elb.send(new DescribeLoadBalancersCommand({ Names: ["stayup-dev-alb"] })))
      .LoadBalancers?.[0];
    assert.equal(lb?.Scheme, "internet-facing");
    const tg = (await elb.send(new DescribeTargetGroupsCommand({ Names: ["stayup-dev-web"] })))
      .TargetGroups?.[0];
    const listeners = (await elb.send(new DescribeListenersCommand({ LoadBalancerArn: lb?.LoadBalancerArn })))
      .Listeners;
    assert.equal(listeners?.length, 1);
    assert.equal(listeners?.[0]?.Port, 80);
    assert.deepEqual(
      listeners?.[0]?.DefaultActions?.map((a) => [a.Type, a.TargetGroupArn]),
      [["forward", tg?.TargetGroupArn]],
    );
    assert.match(outputs.web?.WebLoadBalancerUrl ?? Object.values(outputs.web ?? {})[0] ?? "", /^http:\/\//);
  });

  it("security groups: only the ALB reaches the web port, only web reaches Redis (ingress in moto, egress on the template)", async () => {
    const ec2 = new EC2Client(clientConfig());
    const groups = (await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups ?? [];
    const byDescription = (prefix: string) => groups.find((g) => g.Description?.startsWith(prefix));
    const alb = byDescription("stayup-dev load balancer");
    const web = byDescription("stayup-dev web instances");
    const redis = byDescription("stayup-dev Redis");
    assert.ok(alb && web && redis);
    const simplify = (perms: IpPermission[] | undefined) =>
      (perms ?? []).flatMap((p) => [
        ...(p.IpRanges ?? []).map((r) => `${p.FromPort}<-${r.CidrIp}`),
        ...(p.UserIdGroupPairs ?? []).map((g) => `${p.FromPort}<-${g.GroupId}`),
      ]);
    assert.deepEqual(simplify(web.IpPermissions), [`8000<-${alb.GroupId}`]);
    assert.deepEqual(simplify(redis.IpPermissions), [`6379<-${web.GroupId}`]);
    assert.deepEqual(simplify(alb.IpPermissions).sort(), ["443<-0.0.0.0/0", "80<-0.0.0.0/0"]);
    // AWS::EC2::SecurityGroupEgress is not in moto: the chain's egress side, on the template.
    const network = synthesized.json.network as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };
    const egress = Object.values(network.Resources)
      .filter((r) => r.Type === "AWS::EC2::SecurityGroupEgress")
      .map((r) => `${JSON.stringify(r.Properties.GroupId)}:${r.Properties.FromPort}`);
    assert.equal(egress.filter((e) => e.includes("LoadBalancerSg")).length, 1, "the ALB sends only to web");
    assert.ok(egress.some((e) => e.includes("LoadBalancerSg") && e.endsWith(":8000")));
    assert.ok(egress.some((e) => e.includes("WebSg") && e.endsWith(":6379")));
  });

  it("dev has one NAT gateway", async () => {
    const nats =
      (await new EC2Client(clientConfig()).send(new DescribeNatGatewaysCommand({}))).NatGateways ?? [];
    assert.equal(nats.length, 1);
  });

  it("Route 53: each region's name aliases its own load balancer; dns.name fails over between them", async () => {
    const route53 = new Route53Client({ ...clientConfig(), region: "us-east-1" });
    const records =
      (await route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId }))).ResourceRecordSets ??
      [];
    for (const [role, region] of [
      ["primary", "eu-west-3"],
      ["secondary", "us-east-1"],
    ] as const) {
      const alb = (
        await new ElasticLoadBalancingV2Client({ ...clientConfig(), region }).send(
          new DescribeLoadBalancersCommand({ Names: ["stayup-dev-alb"] }),
        )
      ).LoadBalancers?.[0];
      assert.ok(alb?.DNSName, `the ${role} load balancer exists in ${region}`);
      const alias = records.find((r) => r.Name === `${role}.app.example.com.` && r.Type === "A");
      // CDK aliases the load balancer's dualstack name.
      assert.equal(
        alias?.AliasTarget?.DNSName?.replace(/\.$/, "").toLowerCase(),
        `dualstack.${alb.DNSName}`.toLowerCase(),
      );
      const failover = records.find(
        (r) => r.Name === "app.example.com." && r.Failover === role.toUpperCase(),
      );
      assert.ok(failover, `${role} failover record`);
      assert.equal(failover.Type, "CNAME");
      assert.equal(failover.TTL, 1);
      assert.deepEqual(failover.ResourceRecords, [{ Value: `${role}.app.example.com` }]);
      // Only the PRIMARY record is checked (dns.healthCheck.checkedRecords "primary"): with a check on
      // the SECONDARY too, Route 53 answers the dead primary while a pilot light boots.
      if (role === "secondary") {
        assert.equal(failover.HealthCheckId, undefined, "the SECONDARY record has no health check");
        continue;
      }
      const check = await route53.send(new GetHealthCheckCommand({ HealthCheckId: failover.HealthCheckId }));
      const config = check.HealthCheck?.HealthCheckConfig;
      assert.equal(config?.FullyQualifiedDomainName, `${role}.app.example.com`);
      assert.equal(config?.ResourcePath, REGION_HEALTH_CHECK_PATH);
      assert.equal(config?.RequestInterval, 10);
      // Past the in-region recovery budget (region-failover-timing.ts): stayup.config.ts's 8.
      assert.equal(config?.FailureThreshold, 8);
    }
  });

  it("us-east-1: the two alarms watch the primary's health check and invoke two different functions", async () => {
    const alarms =
      (
        await new CloudWatchClient({ ...clientConfig(), region: "us-east-1" }).send(
          new DescribeAlarmsCommand({ AlarmNamePrefix: "stayup-dev-primary-" }),
        )
      ).MetricAlarms ?? [];
    assert.equal(alarms.length, 2);
    const route53 = new Route53Client({ ...clientConfig(), region: "us-east-1" });
    const records =
      (await route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId }))).ResourceRecordSets ??
      [];
    const primaryCheck = records.find((r) => r.Failover === "PRIMARY")?.HealthCheckId;
    const lambda = new LambdaClient({ ...clientConfig(), region: "us-east-1" });
    const invoked = new Set<string>();
    for (const [name, fn, handler] of [
      ["stayup-dev-primary-unhealthy", "stayup-dev-failover", "index.failoverHandler"],
      ["stayup-dev-primary-healthy", "stayup-dev-failback", "index.failbackHandler"],
    ] as const) {
      const alarm = alarms.find((a) => a.AlarmName === name);
      assert.equal(alarm?.Namespace, "AWS/Route53");
      assert.deepEqual(alarm?.Dimensions, [{ Name: "HealthCheckId", Value: primaryCheck }]);
      const config = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: fn }));
      assert.equal(config.Handler, handler);
      assert.deepEqual(alarm?.AlarmActions, [config.FunctionArn]);
      assert.equal(config.Environment?.Variables?.SECONDARY_GROUP_NAME, "stayup-dev-web");
      assert.equal(config.Environment?.Variables?.SECONDARY_REGION, "us-east-1");
      invoked.add(config.FunctionArn ?? "");
    }
    assert.equal(invoked.size, 2, "failover and failback are different functions");
    // The group the functions resize exists, in the secondary region, at its pilot-light size.
    const groups = (
      await new AutoScalingClient({ ...clientConfig(), region: "us-east-1" }).send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["stayup-dev-web"] }),
      )
    ).AutoScalingGroups;
    assert.deepEqual([groups?.[0]?.MinSize, groups?.[0]?.DesiredCapacity], [0, 0]);
  });

  it("every resource moto did not create is of a type listed, with where it is proven instead", async () => {
    const missing = new Set<string>();
    for (const stackName of synthesized.order) {
      const cfn = new CloudFormationClient({ ...clientConfig(), region: synthesized.regions[stackName] });
      const kind = stackName.slice("stayup-dev-".length);
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
    assert.ok(missing.size > 0, "moto is known to skip some types; if none is skipped, drop the stand-ins");
    for (const type of missing)
      assert.ok(NOT_IN_MOTO[type], `${type} was not created by moto and is not listed`);
  });
});
