/** The ecs topology (seed 004) on AWS: CDK assertions on the synthesized templates. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { Match } from "aws-cdk-lib/assertions";
import { resolveImageTag } from "../src/aws/ecs/image.ts";
import { OFFLINE_PLACEHOLDER_AMI } from "../src/aws/machine-image.ts";
import { cfnLint } from "../src/aws/synth.ts";
import { StayupError } from "../src/shared/errors.ts";
import { StackValidationError } from "../src/stack/index.ts";
import { description, inHostedZone, resourcesOf, type Synthesized, synth } from "./aws-helpers.ts";
import { repoRoot } from "./helpers.ts";

type Json = Record<string, unknown>;
const TAG = { dev: "dev-0123456789abcdef0123456789abcdef01234567", prod: "prod-89abcdef" };
const ecs = (env: "dev" | "prod", change?: Parameters<typeof description>[1]) =>
  description(env, (d) => {
    d.topology = "ecs";
    change?.(d);
  });

describe("AWS topology ecs (CDK assertions)", () => {
  const envs: Record<string, Synthesized> = {};
  before(async () => {
    for (const env of ["dev", "prod"] as const) {
      const d = await ecs(env);
      envs[env] = synthWithTag(d, TAG[env]);
    }
  });
  const t = (env: string, kind: string) => {
    const template = envs[env]?.templates[kind];
    assert.ok(template, `${env} has a ${kind} stack`);
    return template;
  };
  const j = (env: string, kind: string) => envs[env]?.json[kind] as Json;

  it("stacks deploy in order: network, database, repository, cluster, service; the service after cluster, repository and database", () => {
    assert.deepEqual(envs.dev?.order, [
      "stayup-dev-network",
      "stayup-dev-database",
      "stayup-dev-repository",
      "stayup-dev-cluster",
      "stayup-dev-service",
    ]);
    const manifest = JSON.parse(readFileSync(`${envs.dev?.outdir}/manifest.json`, "utf8")) as {
      artifacts: Record<string, { dependencies?: string[] }>;
    };
    const deps = manifest.artifacts["stayup-dev-service"]?.dependencies ?? [];
    for (const s of ["stayup-dev-cluster", "stayup-dev-repository", "stayup-dev-database"])
      assert.ok(deps.includes(s), `service depends on ${s}: ${deps.join(", ")}`);
    assert.ok(manifest.artifacts["stayup-dev-cluster"]?.dependencies?.includes("stayup-dev-network"));
  });

  it("cluster, group and capacity provider share ONE stack, with the association", () => {
    for (const type of [
      "AWS::ECS::Cluster",
      "AWS::AutoScaling::AutoScalingGroup",
      "AWS::ECS::CapacityProvider",
      "AWS::ECS::ClusterCapacityProviderAssociations",
    ]) {
      t("dev", "cluster").resourceCountIs(type, 1);
      assert.equal(resourcesOf(j("dev", "service"), type).length, 0, `${type} not in the service stack`);
    }
  });

  it("capacity provider: managed scaling at the env's target utilisation, termination protection follows scale-in protection, draining on", async () => {
    for (const env of ["dev", "prod"] as const) {
      const d = await ecs(env);
      t(env, "cluster").hasResourceProperties("AWS::ECS::CapacityProvider", {
        AutoScalingGroupProvider: {
          ManagedScaling: { Status: "ENABLED", TargetCapacity: d.ecs.clusterTargetUtilizationPercent },
          ManagedTerminationProtection: d.web.scaleInProtection ? "ENABLED" : "DISABLED",
          ManagedDraining: "ENABLED",
        },
      });
      t(env, "cluster").hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", {
        NewInstancesProtectedFromScaleIn: d.web.scaleInProtection,
        MinSize: String(d.web.capacity.min),
        MaxSize: String(d.web.capacity.max),
        DesiredCapacity: Match.absent(),
      });
    }
    t("dev", "cluster").hasResourceProperties("AWS::ECS::CapacityProvider", {
      AutoScalingGroupProvider: { ManagedScaling: { TargetCapacity: 100 } },
    });
    t("prod", "cluster").hasResourceProperties("AWS::ECS::CapacityProvider", {
      AutoScalingGroupProvider: { ManagedScaling: { TargetCapacity: 75 } },
    });
  });

  it("container instances: IMDSv2 only, encrypted volume, a pinned AMI (offline: the placeholder), none read from SSM at deploy time", () => {
    t("dev", "cluster").hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({
        MetadataOptions: { HttpTokens: "required" },
        BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true }) })],
        ImageId: OFFLINE_PLACEHOLDER_AMI,
      }),
    });
    const parameters = (j("dev", "cluster").Parameters ?? {}) as Record<
      string,
      { Type: string; Default: string }
    >;
    assert.deepEqual(
      Object.values(parameters).filter((p) => p.Type.includes("Image::Id")),
      [],
      "no AMI parameter resolved at every deploy",
    );
    // Nothing was looked up at synthesis (a lookup would write cdk.context.json).
    assert.throws(() =>
      execFileSync("git", ["ls-files", "--error-unmatch", "cdk.context.json"], {
        cwd: repoRoot,
        stdio: "pipe",
      }),
    );
  });

  it("task definition: awsvpc, CPU and memory from the description, CloudWatch logs, the container health check, Redis as secrets", async () => {
    const d = await ecs("dev");
    t("dev", "service").hasResourceProperties("AWS::ECS::TaskDefinition", {
      NetworkMode: "awsvpc",
      RequiresCompatibilities: ["EC2"],
      ContainerDefinitions: [
        Match.objectLike({
          Cpu: d.ecs.task.cpuUnits,
          Memory: d.ecs.task.memoryMiB,
          User: "node",
          ReadonlyRootFilesystem: true,
          PortMappings: [{ ContainerPort: d.webService.port, Protocol: "tcp" }],
          LogConfiguration: Match.objectLike({ LogDriver: "awslogs" }),
          HealthCheck: Match.objectLike({
            Command: [
              "CMD",
              "node",
              "-e",
              Match.stringLikeRegexp(`127.0.0.1:${d.webService.port}${d.targetGroup.healthCheck.path}`),
            ],
            Interval: d.targetGroup.healthCheck.aws.intervalSeconds,
            Retries: d.targetGroup.healthCheck.unhealthyThreshold,
          }),
          Secrets: Match.arrayWith([
            Match.objectLike({ Name: "STAYUP_REDIS_URL" }),
            Match.objectLike({ Name: "STAYUP_REDIS_AUTH_TOKEN" }),
          ]),
        }),
      ],
    });
    const [, taskDef] = resourcesOf(j("dev", "service"), "AWS::ECS::TaskDefinition")[0] ?? [];
    const container = ((taskDef?.Properties as Json).ContainerDefinitions as Json[])[0] as Json;
    const env = JSON.stringify(container.Environment ?? []);
    // Endpoint and token only as secrets; the acknowledgement count is not one.
    assert.ok(
      !/REDIS_(URL|AUTH|HOST|PORT)/.test(env),
      `no Redis endpoint or token in plain environment: ${env}`,
    );
  });

  it("the image is the environment's repository at <env>-<git sha>", () => {
    for (const env of ["dev", "prod"] as const) {
      const [, taskDef] = resourcesOf(j(env, "service"), "AWS::ECS::TaskDefinition")[0] ?? [];
      const image = JSON.stringify(((taskDef?.Properties as Json).ContainerDefinitions as Json[])[0]?.Image);
      assert.ok(image.endsWith(`:${TAG[env]}"]]}`), image);
      assert.match(image, /\.dkr\.ecr\./);
      assert.match(image, new RegExp(`stayup-${env}-repository:ExportsOutputRefRepository`));
    }
  });

  it("service: capacity-provider strategy, circuit breaker with rollback, 100 % minimum healthy, private subnets", async () => {
    const d = await ecs("dev");
    t("dev", "service").hasResourceProperties("AWS::ECS::Service", {
      CapacityProviderStrategy: [
        {
          CapacityProvider: {
            "Fn::ImportValue": Match.stringLikeRegexp("stayup-dev-cluster:.*CapacityProvider"),
          },
          Weight: 1,
        },
      ],
      LaunchType: Match.absent(),
      DesiredCount: d.ecs.tasks.desired,
      DeploymentConfiguration: {
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
      },
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: "DISABLED" }) },
    });
  });

  it("placement: dev binpack on CPU; prod spread over AZs, then instances", () => {
    t("dev", "service").hasResourceProperties("AWS::ECS::Service", {
      PlacementStrategies: [{ Type: "binpack", Field: "CPU" }],
    });
    t("prod", "service").hasResourceProperties("AWS::ECS::Service", {
      PlacementStrategies: [
        { Type: "spread", Field: "attribute:ecs.availability-zone" },
        { Type: "spread", Field: "instanceId" },
      ],
    });
  });

  it("task auto scaling tracks CPU at the description's target between the env's min and max", async () => {
    for (const env of ["dev", "prod"] as const) {
      const d = await ecs(env);
      t(env, "service").hasResourceProperties("AWS::ApplicationAutoScaling::ScalableTarget", {
        ScalableDimension: "ecs:service:DesiredCount",
        MinCapacity: d.ecs.tasks.min,
        MaxCapacity: d.ecs.tasks.max,
      });
      t(env, "service").hasResourceProperties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        PolicyType: "TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration: Match.objectLike({
          TargetValue: d.scaling.targetCpuPercent,
          PredefinedMetricSpecification: { PredefinedMetricType: "ECSServiceAverageCPUUtilization" },
        }),
      });
    }
  });

  it("the ALB's target group takes IP targets with the description's health check", async () => {
    const d = await ecs("dev");
    const hc = d.targetGroup.healthCheck;
    t("dev", "service").hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      TargetType: "ip",
      Port: d.webService.port,
      HealthCheckPath: hc.path,
      HealthCheckIntervalSeconds: hc.aws.intervalSeconds,
      HealthCheckTimeoutSeconds: hc.aws.timeoutSeconds,
      HealthyThresholdCount: hc.healthyThreshold,
      UnhealthyThresholdCount: hc.unhealthyThreshold,
    });
    t("dev", "service").hasResourceProperties("AWS::ECS::Service", {
      LoadBalancers: [Match.objectLike({ ContainerName: "web", ContainerPort: d.webService.port })],
    });
  });

  it("ECR: untagged expire after a day; the last 3 deployed images kept; the last 3 dev- (dev) and 10 prod- (prod); emptied on delete in both", () => {
    const rules = (env: string) => {
      const [, repo] = resourcesOf(j(env, "repository"), "AWS::ECR::Repository")[0] ?? [];
      const p = repo?.Properties as Json;
      return {
        p,
        rules: JSON.parse((p.LifecyclePolicy as Json).LifecyclePolicyText as string).rules as Json[],
      };
    };
    const dev = rules("dev");
    assert.deepEqual(
      dev.rules.map((r) => [r.rulePriority, r.selection]),
      [
        [1, { tagStatus: "untagged", countType: "sinceImagePushed", countNumber: 1, countUnit: "days" }],
        [
          2,
          {
            tagStatus: "tagged",
            tagPrefixList: ["deployed-dev-"],
            countType: "imageCountMoreThan",
            countNumber: 3,
          },
        ],
        [
          3,
          { tagStatus: "tagged", tagPrefixList: ["dev-"], countType: "imageCountMoreThan", countNumber: 3 },
        ],
      ],
    );
    assert.equal(dev.p.EmptyOnDelete, true);
    assert.equal(dev.p.ImageTagMutability, "IMMUTABLE");
    const prod = rules("prod");
    assert.deepEqual(prod.rules[2]?.selection, {
      tagStatus: "tagged",
      tagPrefixList: ["prod-"],
      countType: "imageCountMoreThan",
      countNumber: 10,
    });
    assert.equal(prod.p.EmptyOnDelete, true);
    t("prod", "repository").hasResource("AWS::ECR::Repository", { DeletionPolicy: "Delete" });
    t("dev", "repository").hasResource("AWS::ECR::Repository", { DeletionPolicy: "Delete" });
  });

  it("with a hosted zone and https: records for dns.name and www., HTTPS listener and a 301 from HTTP", async () => {
    const d = await ecs("dev", (x) => {
      inHostedZone(x);
      x.aws.https = true;
    });
    const s = synthWithTag(d, TAG.dev);
    const service = s.templates.service;
    assert.ok(service);
    for (const name of ["app.example.com.", "www.app.example.com."])
      service.hasResourceProperties("AWS::Route53::RecordSet", { Name: name, Type: "A" });
    service.hasResourceProperties("AWS::CertificateManager::Certificate", {
      DomainName: "app.example.com",
      SubjectAlternativeNames: ["www.app.example.com"],
    });
    service.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", { Port: 443, Protocol: "HTTPS" });
    service.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Port: 80,
      DefaultActions: [
        { Type: "redirect", RedirectConfig: Match.objectLike({ Protocol: "HTTPS", StatusCode: "HTTP_301" }) },
      ],
    });
  });

  it("image tags: <env>-<git sha>, the checkout's commit by default; anything else is refused with the fix", async () => {
    const d = await ecs("prod");
    const sha = execFileSync("git", ["rev-parse", "HEAD"], { cwd: repoRoot, encoding: "utf8" }).trim();
    assert.equal(resolveImageTag(d, undefined, repoRoot), `prod-${sha}`);
    assert.equal(resolveImageTag(d, "prod-abc1234"), "prod-abc1234");
    assert.throws(
      () => resolveImageTag(d, "dev-abc1234"),
      (e: StayupError) => /prod-<git sha>/.test(e.message),
    );
    assert.throws(() => resolveImageTag(d, "latest"), StayupError);
  });

  it("a task that does not fit the container instances is refused at validation, with the field path", async () => {
    await assert.rejects(
      ecs("dev", (x) => {
        x.ecs.task.memoryMiB = 4096;
      }),
      (e: StackValidationError) =>
        e.problems.some(
          (p) => p.path === "environments.dev.web.instanceTypes[0]" && /registers/.test(p.message),
        ),
    );
  });
});

describe("AWS topology ecs: compliance", () => {
  it(
    "cdk-nag and cfn-guard find nothing unacknowledged, cfn-lint 0 errors 0 warnings, in both environments",
    { timeout: 300_000 },
    async () => {
      // One cfn-lint run over both environments' templates (its output names each template's path).
      const templates: string[] = [];
      for (const env of ["dev", "prod"] as const) {
        const d = await ecs(env);
        const s = synth(d, true, TAG[env]);
        templates.push(...s.order.map((name) => path.join(s.outdir, `${name}.template.json`)));
      }
      const lint = await cfnLint(templates);
      assert.ok(lint.ok, lint.output);
    },
  );
});

function synthWithTag(d: Awaited<ReturnType<typeof description>>, imageTag: string): Synthesized {
  return synth(d, false, imageTag);
}
