import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { Match } from "aws-cdk-lib/assertions";
import { bundleWebService } from "../src/web-service/bundle.ts";
import { description, inHostedZone, resourcesOf, type Synthesized, synth } from "./aws-helpers.ts";
import { tempDir } from "./helpers.ts";

type Json = Record<string, unknown>;
const logicalIdOf = (json: Json, type: string, match: RegExp) => {
  const found = resourcesOf(json, type).find(([id]) => match.test(id));
  assert.ok(found, `no ${type} matching ${match}`);
  return found[0];
};

/** Every ingress rule on a security group, inline or standalone, as {port, from}. */
function ingressOf(network: Json, sgId: string) {
  const rules: { port: unknown; from: unknown }[] = [];
  const sg = (network.Resources as Record<string, { Properties: Json }>)[sgId];
  for (const r of (sg?.Properties.SecurityGroupIngress as Json[] | undefined) ?? []) {
    rules.push({ port: r.FromPort, from: r.CidrIp ?? r.SourceSecurityGroupId });
  }
  for (const [, r] of resourcesOf(network, "AWS::EC2::SecurityGroupIngress")) {
    const p = r.Properties as Json;
    if (JSON.stringify(p.GroupId).includes(sgId)) {
      rules.push({ port: p.FromPort, from: p.CidrIp ?? (p.SourceSecurityGroupId as Json)["Fn::GetAtt"] });
    }
  }
  return rules;
}

describe("AWS stacks (CDK assertions)", () => {
  const envs: Record<string, Synthesized> = {};
  before(async () => {
    envs.dev = synth(await description("dev"));
    envs.prod = synth(await description("prod"));
  });

  it("a single-node Redis when the description turns Multi-AZ off", async () => {
    const single = synth(await description("dev", (d) => void (d.environments.dev.redis.multiAz = false)));
    single.templates.database?.hasResourceProperties("AWS::ElastiCache::ReplicationGroup", {
      NumCacheClusters: 1,
      MultiAZEnabled: false,
      AutomaticFailoverEnabled: false,
    });
    // No replica to wait for: the instances do not WAIT.
    assert.match(JSON.stringify(single.json.web), /STAYUP_REDIS_WAIT_REPLICAS=0\b/);
    assert.match(JSON.stringify(single.json.web), /STAYUP_REDIS_WRITE_HOLD_MS=0\b/);
  });

  it("prod: one ElastiCache node per AZ, and the instances WAIT for one replica", async () => {
    const prod = envs.prod;
    assert.ok(prod?.templates.database && prod.json.web);
    prod.templates.database.hasResourceProperties("AWS::ElastiCache::ReplicationGroup", {
      NumCacheClusters: (await description("prod")).regions.primary.availabilityZones.length,
      MultiAZEnabled: true,
      AutomaticFailoverEnabled: true,
    });
    assert.match(JSON.stringify(prod.json.web), /STAYUP_REDIS_WAIT_REPLICAS=1\b/);
    // Held through an ElastiCache failover (60 s budget), 5 s short of the ALB's 60 s idle timeout.
    assert.match(JSON.stringify(prod.json.web), /STAYUP_REDIS_WRITE_HOLD_MS=55000\b/);
  });

  it("stacks deploy in the seeds' order, the secondary region's after the primary's", () => {
    assert.deepEqual(envs.dev?.order, [
      "stayup-dev-network",
      "stayup-dev-database",
      "stayup-dev-web",
      "stayup-dev-secondary-network",
      "stayup-dev-secondary-database",
      "stayup-dev-secondary-web",
    ]);
    assert.equal(envs.dev?.regions["stayup-dev-web"], "eu-west-3");
    assert.equal(envs.dev?.regions["stayup-dev-secondary-web"], "us-east-1");
  });

  it("the secondary region runs the same tier at its standby size (pilot light: no instance)", async () => {
    const d = await description("prod");
    const json = envs.prod?.json["secondary-network"] as Json;
    const azs = new Set(
      resourcesOf(json, "AWS::EC2::Subnet").map(([, s]) => (s.Properties as Json).AvailabilityZone),
    );
    assert.deepEqual([...azs].sort(), d.regions.secondary?.availabilityZones);
    envs.prod?.templates["secondary-web"]?.hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", {
      MinSize: "0",
      // Left to the failover/failback Lambdas: a deploy during a failover must not shrink the group.
      DesiredCapacity: Match.absent(),
      MaxSize: String(d.web.capacity.max),
      HealthCheckType: "ELB",
    });
    envs.prod?.templates["secondary-web"]?.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      HealthCheckPath: d.targetGroup.healthCheck.path,
    });
    const warm = synth(
      await description("prod", (x) => {
        if (x.regions.secondary) x.regions.secondary.standby = { mode: "warm", warmCapacity: 1 };
      }),
    );
    // A warm standby keeps its minimum: target tracking must not scale it in to nothing.
    warm.templates["secondary-web"]?.hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", {
      MinSize: "1",
      DesiredCapacity: Match.absent(),
    });
  });

  for (const env of ["dev", "prod"] as const) {
    it(`${env}: a VPC over 3 AZs with public, private and isolated subnets and ${env === "dev" ? "one NAT gateway" : "a NAT gateway per AZ"}`, () => {
      const network = envs[env]?.templates.network;
      assert.ok(network);
      network.resourceCountIs("AWS::EC2::Subnet", 9);
      network.resourceCountIs("AWS::EC2::NatGateway", env === "dev" ? 1 : 3);
      network.hasResourceProperties("AWS::EC2::FlowLog", { TrafficType: "ALL" });
      const json = envs[env]?.json.network as Json;
      const subnets = resourcesOf(json, "AWS::EC2::Subnet");
      const azs = new Set(subnets.map(([, s]) => (s.Properties as Json).AvailabilityZone));
      assert.deepEqual([...azs].sort(), ["eu-west-3a", "eu-west-3b", "eu-west-3c"]);
      for (const [, s] of subnets) assert.equal((s.Properties as Json).MapPublicIpOnLaunch, false);
      // Default routes per tier: public → internet gateway, web → NAT, redis → none.
      const routes = resourcesOf(json, "AWS::EC2::Route").map(([id, r]) => ({ id, p: r.Properties as Json }));
      const tierRoutes = (tier: string) => routes.filter((r) => r.id.toLowerCase().includes(`${tier}subnet`));
      assert.equal(tierRoutes("public").length, 3);
      assert.ok(tierRoutes("public").every((r) => r.p.GatewayId));
      assert.equal(tierRoutes("web").length, 3);
      assert.ok(tierRoutes("web").every((r) => r.p.NatGatewayId));
      assert.equal(tierRoutes("redis").length, 0, "isolated subnets have no route out");
    });
  }

  it("security groups chain ALB → web → Redis and nothing else reaches web or Redis", () => {
    const json = envs.prod?.json.network as Json;
    const alb = logicalIdOf(json, "AWS::EC2::SecurityGroup", /LoadBalancerSg/);
    const web = logicalIdOf(json, "AWS::EC2::SecurityGroup", /WebSg/);
    const redis = logicalIdOf(json, "AWS::EC2::SecurityGroup", /RedisSg/);
    assert.deepEqual(ingressOf(json, web), [{ port: 8000, from: [alb, "GroupId"] }]);
    assert.deepEqual(ingressOf(json, redis), [{ port: 6379, from: [web, "GroupId"] }]);
    assert.deepEqual(
      ingressOf(json, alb).sort((a, b) => Number(a.port) - Number(b.port)),
      [
        { port: 80, from: "0.0.0.0/0" },
        { port: 443, from: "0.0.0.0/0" },
      ],
    );
    assert.equal(
      resourcesOf(json, "AWS::EC2::SecurityGroup").length,
      3,
      "no bastion group without a bastion",
    );
  });

  for (const env of ["dev", "prod"] as const) {
    it(`${env}: target group health check and deregistration delay come from the description`, async () => {
      const d = await description(env);
      const hc = d.targetGroup.healthCheck;
      envs[env]?.templates.web?.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
        Port: d.webService.port,
        HealthCheckPath: hc.path,
        HealthCheckIntervalSeconds: hc.aws.intervalSeconds,
        HealthCheckTimeoutSeconds: hc.aws.timeoutSeconds,
        HealthyThresholdCount: hc.healthyThreshold,
        UnhealthyThresholdCount: hc.unhealthyThreshold,
        TargetGroupAttributes: Match.arrayWith([
          {
            Key: "deregistration_delay.timeout_seconds",
            Value: String(d.targetGroup.deregistrationDelaySeconds),
          },
        ]),
      });
    });
  }

  it("the listener forwards to the target group; the load balancer is internet-facing in public subnets", () => {
    const web = envs.dev?.templates.web;
    const tg = logicalIdOf(
      envs.dev?.json.web as Json,
      "AWS::ElasticLoadBalancingV2::TargetGroup",
      /TargetGroup/,
    );
    web?.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Port: 80,
      DefaultActions: [{ Type: "forward", TargetGroupArn: { Ref: tg } }],
    });
    web?.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", {
      Scheme: "internet-facing",
      Subnets: Match.arrayWith([
        Match.objectLike({ "Fn::ImportValue": Match.stringLikeRegexp("publicSubnet") }),
      ]),
    });
  });

  it("the group: private subnets, ELB health checks, attached to the target group, instance refresh at 100 %", async () => {
    for (const env of ["dev", "prod"] as const) {
      const d = await description(env);
      const json = envs[env]?.json.web as Json;
      const tg = logicalIdOf(json, "AWS::ElasticLoadBalancingV2::TargetGroup", /TargetGroup/);
      envs[env]?.templates.web?.hasResource("AWS::AutoScaling::AutoScalingGroup", {
        Properties: Match.objectLike({
          MinSize: String(d.web.capacity.min),
          MaxSize: String(d.web.capacity.max),
          DesiredCapacity: String(d.web.capacity.desired),
          HealthCheckType: "ELB",
          TargetGroupARNs: [{ Ref: tg }],
          // The web groups scale in: never protected (web.scaleInProtection is ECS's).
          NewInstancesProtectedFromScaleIn: false,
          VPCZoneIdentifier: [0, 1, 2].map(() =>
            Match.objectLike({ "Fn::ImportValue": Match.stringLikeRegexp("webSubnet") }),
          ),
          MixedInstancesPolicy: Match.objectLike({
            LaunchTemplate: Match.objectLike({
              Overrides: d.web.instanceTypes.map((t) => ({ InstanceType: t })),
            }),
          }),
        }),
        UpdatePolicy: {
          AutoScalingInstanceRefresh: Match.objectLike({
            Preferences: Match.objectLike({ MinHealthyPercentage: 100 }),
          }),
        },
      });
    }
  });

  it("target tracking keeps both groups' average CPU at the description's target", async () => {
    const d = await description("prod");
    for (const kind of ["web", "secondary-web"]) {
      envs.prod?.templates[kind]?.hasResourceProperties("AWS::AutoScaling::ScalingPolicy", {
        PolicyType: "TargetTrackingScaling",
        EstimatedInstanceWarmup: d.scaling.aws.warmupSeconds,
        TargetTrackingConfiguration: {
          PredefinedMetricSpecification: { PredefinedMetricType: "ASGAverageCPUUtilization" },
          TargetValue: d.scaling.targetCpuPercent,
        },
      });
    }
  });

  it("launch template: IMDSv2 required, encrypted volume, the web service under systemd", () => {
    const web = envs.prod?.templates.web;
    web?.hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({
        MetadataOptions: { HttpTokens: "required", HttpPutResponseHopLimit: 1 },
        BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true }) })],
      }),
    });
    const userData = JSON.stringify(envs.prod?.json.web);
    assert.match(userData, /ExecStart=\/usr\/bin\/node-20 \/opt\/stayup\/web-service\.mjs/);
    assert.match(userData, /X-aws-ec2-metadata-token-ttl-seconds/, "IMDSv2 token in user data");
    assert.match(userData, /REGION=\$\(imds placement\/region\)/, "no hard-coded region");
    assert.match(userData, /STAYUP_REDIS_URL=\$REDIS_URL/);
    assert.match(userData, /STAYUP_REDIS_WAIT_REPLICAS=1\b/, "a count is answered once a replica holds it");
    assert.match(userData, /rediss:\/\//, "TLS to ElastiCache");
  });

  it("instances may read exactly their bundle and the Redis token, nothing wider", () => {
    const json = envs.prod?.json.web as Json;
    const statements = resourcesOf(json, "AWS::IAM::Policy").flatMap(
      ([, p]) => ((p.Properties as Json).PolicyDocument as { Statement: Json[] }).Statement,
    );
    const s3 = statements.find((s) => JSON.stringify(s.Action).includes("s3:"));
    assert.equal(s3?.Action, "s3:GetObject");
    assert.match(JSON.stringify(s3?.Resource), /\.mjs/, "one object: the bundle");
    const secret = statements.find((s) => JSON.stringify(s.Action).includes("secretsmanager:GetSecretValue"));
    assert.match(JSON.stringify(secret?.Resource), /ImportValue.*AuthToken/i);
    // Only Session Manager's agent actions, which have no resource types, are on *.
    for (const s of statements.filter((x) => x.Sid !== "SessionManager"))
      assert.notEqual(s.Resource, "*", `${JSON.stringify(s.Action)} on *`);
  });

  it("the bundle user data installs is the same code the local runtime runs", async () => {
    const local = readFileSync(await bundleWebService(tempDir()));
    const outdir = envs.dev?.outdir as string;
    const asset = readdirSync(outdir).find((f) => /^asset\..*\.mjs$/.test(f));
    assert.ok(asset, "the web service bundle is an asset of the web stack");
    assert.ok(
      readFileSync(path.join(outdir, asset)).equals(local),
      "byte-identical to the local runtime's bundle",
    );
    const hash = asset.slice("asset.".length, -".mjs".length);
    assert.ok(JSON.stringify(envs.dev?.json.web).includes(hash), "user data downloads that asset");
  });

  for (const env of ["dev", "prod"] as const) {
    it(`${env}: Redis replication group is encrypted, AUTH-protected, in isolated subnets, Multi-AZ as described`, async () => {
      const multiAz = (await description(env)).redis.multiAz;
      const db = envs[env]?.templates.database;
      db?.hasResourceProperties("AWS::ElastiCache::ReplicationGroup", {
        TransitEncryptionEnabled: true,
        AtRestEncryptionEnabled: true,
        AuthToken: Match.objectLike({
          "Fn::Join": Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp("resolve:secretsmanager")])]),
        }),
        NumCacheClusters: multiAz ? 3 : 1,
        MultiAZEnabled: multiAz,
        AutomaticFailoverEnabled: multiAz,
      });
      db?.hasResourceProperties("AWS::ElastiCache::SubnetGroup", {
        SubnetIds: [0, 1, 2].map(() =>
          Match.objectLike({ "Fn::ImportValue": Match.stringLikeRegexp("redisSubnet") }),
        ),
      });
      db?.hasResourceProperties("AWS::SecretsManager::Secret", {
        GenerateSecretString: Match.objectLike({ ExcludePunctuation: true, PasswordLength: 64 }),
      });
    });
  }

  it("prod protects from deletion; dev does not", () => {
    const attr = (env: string) =>
      JSON.stringify(
        resourcesOf(envs[env]?.json.web as Json, "AWS::ElasticLoadBalancingV2::LoadBalancer")[0]?.[1]
          .Properties,
      );
    assert.match(attr("prod"), /"deletion_protection.enabled","Value":"true"/);
    assert.match(attr("dev"), /"deletion_protection.enabled","Value":"false"/);
  });
});

describe("AWS stacks: bastion, single instance, HTTPS", () => {
  it("the optional bastion: SSH only from the configured range, its Elastic IP policy scoped to one allocation", async () => {
    const d = await description("dev", (s) => {
      s.aws.bastion = { allowedCidr: "203.0.113.0/24", instanceType: "t3.nano" };
    });
    const out = synth(d);
    assert.deepEqual(out.order.slice(0, 4), [
      "stayup-dev-network",
      "stayup-dev-access",
      "stayup-dev-database",
      "stayup-dev-web",
    ]);
    const network = out.json.network as Json;
    const bastionSg = logicalIdOf(network, "AWS::EC2::SecurityGroup", /BastionSg/);
    const web = logicalIdOf(network, "AWS::EC2::SecurityGroup", /WebSg/);
    assert.deepEqual(ingressOf(network, bastionSg), [{ port: 22, from: "203.0.113.0/24" }]);
    assert.deepEqual(
      ingressOf(network, web)
        .map((r) => r.port)
        .sort(),
      [22, 8000],
      "web admits SSH from the bastion only",
    );
    const statements = resourcesOf(out.json.access as Json, "AWS::IAM::Policy").flatMap(
      ([, p]) => ((p.Properties as Json).PolicyDocument as { Statement: Json[] }).Statement,
    );
    const associate = statements.filter((s) => s.Action === "ec2:AssociateAddress");
    assert.equal(associate.length, 2);
    assert.match(JSON.stringify(associate[0]?.Resource), /elastic-ip\/.*AllocationId/);
    assert.deepEqual(associate[1]?.Condition, {
      StringEquals: { "aws:ResourceTag/aws:autoscaling:groupName": "stayup-dev-bastion" },
    });
    out.templates.access?.hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", {
      MinSize: "1",
      MaxSize: "1",
    });
    out.templates.access?.hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({ MetadataOptions: Match.objectLike({ HttpTokens: "required" }) }),
    });
  });

  it("single instance (seed 003): group of 1, stable Elastic IP, encrypted data volume it attaches, no ALB", async () => {
    const d = await description("prod", (s) => {
      s.topology = "single-instance";
    });
    const out = synth(d);
    assert.deepEqual(out.order, ["stayup-prod-network", "stayup-prod-single-instance"]);
    const t = out.templates["single-instance"];
    t?.resourceCountIs("AWS::ElasticLoadBalancingV2::LoadBalancer", 0);
    t?.hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", { MinSize: "1", MaxSize: "1" });
    t?.hasResourceProperties("AWS::EC2::Volume", {
      Encrypted: true,
      AvailabilityZone: "eu-west-3a",
      Size: 8,
    });
    t?.resourceCountIs("AWS::EC2::EIP", 1);
    const statements = resourcesOf(out.json["single-instance"] as Json, "AWS::IAM::Policy").flatMap(
      ([, p]) => ((p.Properties as Json).PolicyDocument as { Statement: Json[] }).Statement,
    );
    const attach = statements.filter((s) => s.Action === "ec2:AttachVolume");
    assert.match(JSON.stringify(attach[0]?.Resource), /volume\/.*DataVolume/);
    assert.ok(attach[1]?.Condition, "instance/* only with the group condition");
    assert.match(
      JSON.stringify(out.json["single-instance"]),
      /redis6-server .*--dir \/var\/lib\/stayup\/redis/,
    );
  });

  it("HTTPS: a certificate for dns.name, 443 forwarding, 80 answering 301 to HTTPS, the region's alias record", async () => {
    const d = await description("prod", (s) => {
      inHostedZone(s);
      s.aws.https = true;
    });
    const web = synth(d).templates.web;
    web?.hasResourceProperties("AWS::CertificateManager::Certificate", {
      DomainName: "app.example.com",
      SubjectAlternativeNames: ["primary.app.example.com"],
    });
    web?.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", { Port: 443, Protocol: "HTTPS" });
    web?.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Port: 80,
      DefaultActions: [
        Match.objectLike({
          Type: "redirect",
          RedirectConfig: Match.objectLike({ Protocol: "HTTPS", StatusCode: "HTTP_301" }),
        }),
      ],
    });
    // With a secondary region the failover record owns app.example.com; each region has its own name.
    web?.hasResourceProperties("AWS::Route53::RecordSet", { Name: "primary.app.example.com.", Type: "A" });
    web?.hasOutput("*", { Value: "https://primary.app.example.com" });
  });
});

describe("CDK's built-in CloudFormation validation", () => {
  // It took 10 of a synthesis's 11 s of CPU; cfn-lint (stayup check, CI) covers what it checks.
  it("is off in stayup's apps, and CDK_VALIDATION=true turns it back on", async () => {
    const { createStayupApp } = await import("../src/aws/compliance/checks.ts");
    const saved = process.env.CDK_VALIDATION;
    try {
      delete process.env.CDK_VALIDATION;
      assert.equal(
        createStayupApp({ outdir: tempDir("stayup-app-") })._builtinCloudFormationValidation,
        false,
      );
      process.env.CDK_VALIDATION = "true";
      assert.equal(
        createStayupApp({ outdir: tempDir("stayup-app-") })._builtinCloudFormationValidation,
        true,
      );
    } finally {
      if (saved === undefined) delete process.env.CDK_VALIDATION;
      else process.env.CDK_VALIDATION = saved;
    }
  });
});
