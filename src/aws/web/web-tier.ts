import { CfnOutput, Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as autoscaling from "aws-cdk-lib/aws-autoscaling";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { derive, type ResolvedStack } from "../../stack/index.ts";
import { loadBalancerName, resourcePrefix, webGroupName } from "../naming.ts";
import { addPublicLoadBalancer, addTargetGroup } from "./load-balancer.ts";
import { addNightlyStop } from "../nightly-stop.ts";
import { type RedisConnection, WebServiceLaunchTemplate } from "./launch-template.ts";

export { HSTS_HEADER_VALUE, PRIVATE_PATHS } from "./load-balancer.ts";

export interface WebTierProps {
  stack: ResolvedStack;
  vpc: ec2.IVpc;
  loadBalancerSecurityGroup: ec2.ISecurityGroup;
  webSecurityGroup: ec2.ISecurityGroup;
  redis: RedisConnection;
  bundleDir: string;
  /**
   * The group's capacity (the description's unless given: a standby region's is smaller). Without
   * `desired` the template leaves the desired capacity alone, so a deploy in the middle of a
   * failover does not shrink the group the failover Lambda grew (it starts at `min`).
   */
  capacity?: { min: number; desired?: number; max: number };
  /** Which region this tier serves; decides the DNS name it publishes. */
  role: "primary" | "secondary";
}

/**
 * Tutorial 07's web tier: an internet-facing ALB in the public subnets, a target group whose health
 * check comes from the stack description, and an Auto Scaling group of web instances in the private
 * subnets with ELB health checks, replaced by instance refresh (100 % minimum healthy) on every
 * launch-template change.
 */
export class WebTier extends Construct {
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly group: autoscaling.AutoScalingGroup;
  /** The listener that forwards to the target group (HTTPS when configured). */
  readonly listener: elbv2.ApplicationListener;
  readonly launch: WebServiceLaunchTemplate;
  /** Launches, terminations and their failures (and, later, failover events). */
  readonly notifications: sns.Topic;

  constructor(scope: Construct, id: string, props: WebTierProps) {
    super(scope, id);
    const { stack } = props;
    const derived = derive(stack);
    const prefix = resourcePrefix(stack);

    this.targetGroup = addTargetGroup(this, {
      stack,
      vpc: props.vpc,
      targetType: elbv2.TargetType.INSTANCE,
      name: `${prefix}-web`,
    });
    const front = addPublicLoadBalancer(this, {
      stack,
      vpc: props.vpc,
      securityGroup: props.loadBalancerSecurityGroup,
      targetGroup: this.targetGroup,
      role: props.role,
      name: loadBalancerName(stack, "load-balanced"),
    });
    this.loadBalancer = front.loadBalancer;
    this.listener = front.listener;
    const publicName = front.publicName;

    this.launch = new WebServiceLaunchTemplate(this, "Instances", {
      stack,
      name: `${prefix}-web`,
      securityGroup: props.webSecurityGroup,
      redis: props.redis,
      instanceType: stack.web.instanceTypes[0] as string,
      port: stack.webService.port,
      bundleDir: props.bundleDir,
    });
    this.notifications = new sns.Topic(this, "Notifications", {
      topicName: `${prefix}-notifications`,
      displayName: `stayup ${stack.environment}: scaling and failover events`,
      masterKey: kms.Alias.fromAliasName(this, "SnsKey", "alias/aws/sns"),
      enforceSSL: true,
    });
    const capacity = props.capacity ?? stack.web.capacity;
    this.group = new autoscaling.AutoScalingGroup(this, "Group", {
      autoScalingGroupName: webGroupName(stack),
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      mixedInstancesPolicy: {
        launchTemplate: this.launch.launchTemplate,
        launchTemplateOverrides: stack.web.instanceTypes.map((type) => ({
          instanceType: new ec2.InstanceType(type),
        })),
        instancesDistribution: { onDemandPercentageAboveBaseCapacity: 100 },
      },
      minCapacity: capacity.min,
      maxCapacity: capacity.max,
      desiredCapacity: capacity.desired,
      healthChecks: autoscaling.HealthChecks.withAdditionalChecks({
        additionalTypes: [autoscaling.AdditionalHealthCheckType.ELB],
        gracePeriod: Duration.seconds(derived.healthCheckGracePeriod.awsSeconds),
      }),
      // No scale-in protection: this group scales in (target tracking, the nightly stop, failback
      // returning the secondary to standby), and protected instances would never go. The
      // description's web.scaleInProtection is ECS's managed termination protection.
      newInstancesProtectedFromScaleIn: false,
      updatePolicy: refreshWithoutWaiting(derived.instanceWarmup.awsSeconds),
      groupMetrics: [autoscaling.GroupMetrics.all()],
      notifications: [{ topic: this.notifications }],
    });
    this.group.attachToApplicationTargetGroup(this.targetGroup);
    addNightlyStop(this.group, stack.nightlyStop, capacity);
    // Seed 002's scaling: track the group's average CPU at the description's target.
    this.group.scaleOnCpuUtilization("CpuTargetTracking", {
      targetUtilizationPercent: stack.scaling.targetCpuPercent,
      estimatedInstanceWarmup: Duration.seconds(derived.instanceWarmup.awsSeconds),
      cooldown: Duration.seconds(stack.scaling.aws.scaleInCooldownSeconds),
    });

    // With HTTPS the certificate names this region's DNS name, not the load balancer's own.
    new CfnOutput(this, "LoadBalancerUrl", {
      value:
        stack.aws.https && publicName
          ? `https://${publicName}`
          : `http://${this.loadBalancer.loadBalancerDnsName}`,
      description: "The web service, through the load balancer",
    });
  }
}

/**
 * Instance refresh at 100 % minimum healthy that never waits on an instance: protected instances
 * are refreshed, standby ones terminated. AWS's default for both is to wait (an hour, then the
 * refresh fails and CloudFormation rolls the update back).
 */
export function refreshWithoutWaiting(warmupSeconds: number): autoscaling.UpdatePolicy {
  return autoscaling.UpdatePolicy.instanceRefresh({
    strategy: autoscaling.InstanceRefreshStrategy.ROLLING,
    minHealthyPercentage: 100,
    maxHealthyPercentage: 200,
    instanceWarmup: Duration.seconds(warmupSeconds),
    scaleInProtectedInstances: autoscaling.ScaleInProtectedInstances.REFRESH,
    standbyInstances: autoscaling.StandbyInstances.TERMINATE,
  });
}

export class WebStack extends Stack {
  readonly web: WebTier;
  constructor(scope: Construct, id: string, props: StackProps & WebTierProps) {
    super(scope, id, props);
    this.web = new WebTier(this, "Web", props);
  }
}
