import { CfnOutput, Duration, Stack } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as ecr from "aws-cdk-lib/aws-ecr";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as ssm from "aws-cdk-lib/aws-ssm";
import type { Construct, IDependable } from "constructs";
import { type PlacementStep, placementSteps } from "../../stack/ecs.ts";
import { redisReplicasToAcknowledge, redisWriteHoldMs } from "../../stack/redis-durability.ts";
import { containerServiceArtifact } from "../../stack/service-artifact.ts";
import { loadBalancerName, nameUnlessRetained, removalPolicyOf, resourcePrefix } from "../naming.ts";
import { addPublicLoadBalancer, addTargetGroup } from "../web/load-balancer.ts";
import { containerHealthProbe, containerHealthTimings, containerStartScript } from "./container.ts";
import type { EcsStackProps } from "./props.ts";

export interface ServiceStackProps extends EcsStackProps {
  cluster: ecs.ICluster;
  capacityProviderName: string;
  /** The cluster's capacity-provider association: the service must not exist before it. */
  capacityProviderAssociation: IDependable;
  repository: ecr.IRepository;
  imageTag: string;
  loadBalancerSecurityGroup: ec2.ISecurityGroup;
  /** The tasks' security group (the web port from the load balancer, Redis out). */
  taskSecurityGroup: ec2.ISecurityGroup;
  redis: { endpoint: string; port: string; authToken: secretsmanager.ISecret };
}

const toStrategy = (step: PlacementStep): ecs.PlacementStrategy =>
  step.type === "binpack"
    ? step.field === "cpu"
      ? ecs.PlacementStrategy.packedByCpu()
      : ecs.PlacementStrategy.packedByMemory()
    : step.field === "instanceId"
      ? ecs.PlacementStrategy.spreadAcrossInstances()
      : ecs.PlacementStrategy.spreadAcross(ecs.BuiltInAttributes.AVAILABILITY_ZONE);

/**
 * Seed 004's service, after the cluster: the ALB (HTTPS and the 301 as in the load-balanced
 * topology) with an IP target group, the awsvpc task definition and the ECS service on the
 * capacity provider, placed per environment, with the circuit breaker and task auto scaling.
 */
export class ServiceStack extends Stack {
  readonly service: ecs.Ec2Service;
  readonly taskDefinition: ecs.Ec2TaskDefinition;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;

  constructor(scope: Construct, id: string, props: ServiceStackProps) {
    super(scope, id, props);
    const { stack } = props;
    const prefix = resourcePrefix(stack);

    this.targetGroup = addTargetGroup(this, {
      stack,
      vpc: props.vpc,
      // awsvpc: every task has its own address, registered as an IP target.
      targetType: elbv2.TargetType.IP,
      name: `${prefix}-tasks`,
    });
    const front = addPublicLoadBalancer(this, {
      stack,
      vpc: props.vpc,
      securityGroup: props.loadBalancerSecurityGroup,
      targetGroup: this.targetGroup,
      role: "primary",
      name: loadBalancerName(stack, "ecs"),
      extraNames: stack.dns ? [`www.${stack.dns.name}`] : [],
    });
    this.loadBalancer = front.loadBalancer;

    // The Redis endpoint and its AUTH token reach the container as secrets, never as plain
    // environment in the task definition.
    const redisUrl = new ssm.StringParameter(this, "RedisUrl", {
      parameterName: `/stayup/${prefix}/redis-url`,
      description: `${prefix} Redis endpoint (TLS); the AUTH token is in Secrets Manager`,
      stringValue: `rediss://${props.redis.endpoint}:${props.redis.port}`,
    });
    const logGroup = new logs.LogGroup(this, "Logs", {
      logGroupName: nameUnlessRetained(stack, `/stayup/${prefix}/tasks`),
      retention: stack.aws.logRetentionDays as logs.RetentionDays,
      removalPolicy: removalPolicyOf(stack),
    });
    this.taskDefinition = new ecs.Ec2TaskDefinition(this, "TaskDefinition", {
      family: `${prefix}-web`,
      networkMode: ecs.NetworkMode.AWS_VPC,
    });
    const health = containerHealthTimings(stack);
    const port = stack.webService.port;
    const artifact = containerServiceArtifact(stack.webService);
    // The counter's image is known (user node, node for its probe); the user's image, built from
    // the project's Dockerfile, runs as webService.aws.containerUser, starts `command` through the prelude, and is
    // health-checked by the target group alone (its image may have no node, curl or wget).
    const container = this.taskDefinition.addContainer("Web", {
      containerName: "web",
      image: ecs.ContainerImage.fromEcrRepository(props.repository, props.imageTag),
      cpu: stack.ecs.task.cpuUnits,
      memoryLimitMiB: stack.ecs.task.memoryMiB,
      essential: true,
      ...(artifact.kind === "counter"
        ? { user: "node" }
        : {
            user: artifact.user,
            entryPoint: ["/bin/sh", "-c"],
            command: [containerStartScript(artifact.command)],
          }),
      readonlyRootFilesystem: true,
      portMappings: [{ containerPort: port, protocol: ecs.Protocol.TCP }],
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: "web" }),
      // The same acknowledgement rule as the instances': a count is answered once a replica holds
      // it. The AZ is not known here: the service reads it from the task metadata endpoint (v4).
      environment: {
        PORT: String(port),
        HOST: "0.0.0.0",
        STAYUP_REGION: this.region,
        STAYUP_REDIS_WAIT_REPLICAS: String(redisReplicasToAcknowledge(stack)),
        STAYUP_REDIS_WRITE_HOLD_MS: String(redisWriteHoldMs(stack, "aws")),
      },
      secrets: {
        STAYUP_REDIS_URL: ecs.Secret.fromSsmParameter(redisUrl),
        STAYUP_REDIS_AUTH_TOKEN: ecs.Secret.fromSecretsManager(props.redis.authToken),
      },
      healthCheck:
        artifact.kind === "counter"
          ? {
              command: ["CMD", ...containerHealthProbe(stack)],
              interval: Duration.seconds(health.intervalSeconds),
              timeout: Duration.seconds(health.timeoutSeconds),
              retries: health.retries,
              startPeriod: Duration.seconds(health.startPeriodSeconds),
            }
          : undefined,
      // SIGTERM drains in-flight requests; give it the deregistration delay before SIGKILL.
      stopTimeout: Duration.seconds(Math.min(120, stack.targetGroup.deregistrationDelaySeconds)),
    });
    if (artifact.kind === "command") {
      // The root file system stays read-only; /tmp is a volume of the task's own (a Docker volume
      // is filled from the image's /tmp, mode 1777 included), gone with the task.
      this.taskDefinition.addVolume({
        name: "tmp",
        dockerVolumeConfiguration: { scope: ecs.Scope.TASK, driver: "local" },
      });
      container.addMountPoints({ containerPath: "/tmp", sourceVolume: "tmp", readOnly: false });
    }

    this.service = new ecs.Ec2Service(this, "Service", {
      serviceName: `${prefix}-web`,
      cluster: props.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: stack.ecs.tasks.desired,
      capacityProviderStrategies: [{ capacityProvider: props.capacityProviderName, weight: 1 }],
      placementStrategies: placementSteps(stack.ecs.placement).map(toStrategy),
      circuitBreaker: { enable: true, rollback: true },
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      securityGroups: [props.taskSecurityGroup],
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      healthCheckGracePeriod: Duration.seconds(60),
      propagateTags: ecs.PropagatedTagSource.SERVICE,
      enableECSManagedTags: true,
    });
    // A service with a capacity-provider strategy fails to create before the cluster's association.
    this.service.node.addDependency(props.capacityProviderAssociation);
    this.service.attachToApplicationTargetGroup(this.targetGroup);

    const scaling = this.service.autoScaleTaskCount({
      minCapacity: stack.ecs.tasks.min,
      maxCapacity: stack.ecs.tasks.max,
    });
    scaling.scaleOnCpuUtilization("CpuTargetTracking", {
      targetUtilizationPercent: stack.scaling.targetCpuPercent,
      scaleInCooldown: Duration.seconds(stack.scaling.aws.scaleInCooldownSeconds),
      scaleOutCooldown: Duration.seconds(stack.scaling.aws.warmupSeconds),
    });

    new CfnOutput(this, "LoadBalancerUrl", {
      value:
        stack.aws.https && front.publicName
          ? `https://${front.publicName}`
          : `http://${this.loadBalancer.loadBalancerDnsName}`,
      description: "The web service, through the load balancer",
    });
  }
}
