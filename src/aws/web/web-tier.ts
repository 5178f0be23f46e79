import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as autoscaling from "aws-cdk-lib/aws-autoscaling";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as acm from "aws-cdk-lib/aws-certificatemanager";
import * as kms from "aws-cdk-lib/aws-kms";
import * as route53 from "aws-cdk-lib/aws-route53";
import * as route53targets from "aws-cdk-lib/aws-route53-targets";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import type { ResolvedStack } from "../../stack/index.ts";
import { regionalName, resourcePrefix, webGroupName } from "../naming.ts";
import { type RedisConnection, WebServiceLaunchTemplate } from "./launch-template.ts";

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
    const prefix = resourcePrefix(stack);
    const hc = stack.targetGroup.healthCheck;
    const removalPolicy = stack.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    const accessLogs = new s3.Bucket(this, "AccessLogs", {
      // ALB access logs support only S3-managed keys.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(stack.aws.logRetentionDays) }],
      removalPolicy,
    });
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, "LoadBalancer", {
      loadBalancerName: `${prefix}-alb`,
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroup: props.loadBalancerSecurityGroup,
      deletionProtection: stack.deletionProtection,
      dropInvalidHeaderFields: true,
    });
    this.loadBalancer.logAccessLogs(accessLogs, "alb");

    this.targetGroup = new elbv2.ApplicationTargetGroup(this, "TargetGroup", {
      targetGroupName: `${prefix}-web`,
      vpc: props.vpc,
      port: stack.webService.port,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.INSTANCE,
      deregistrationDelay: Duration.seconds(stack.targetGroup.deregistrationDelaySeconds),
      healthCheck: {
        path: hc.path,
        interval: Duration.seconds(hc.aws.intervalSeconds),
        timeout: Duration.seconds(hc.aws.timeoutSeconds),
        healthyThresholdCount: hc.healthyThreshold,
        unhealthyThresholdCount: hc.unhealthyThreshold,
        healthyHttpCodes: "200",
      },
    });
    const hostedZone = stack.aws.hostedZone;
    const zone = hostedZone
      ? route53.HostedZone.fromHostedZoneAttributes(this, "Zone", {
          hostedZoneId: hostedZone.id,
          zoneName: hostedZone.name,
        })
      : undefined;
    // dns.name itself, or `<role>.<dns.name>` when a failover record owns dns.name.
    const publicName = regionalName(stack, props.role);
    if (stack.aws.https && zone && stack.dns && publicName) {
      const certificate = new acm.Certificate(this, "Certificate", {
        domainName: stack.dns.name,
        subjectAlternativeNames: publicName === stack.dns.name ? undefined : [publicName],
        validation: acm.CertificateValidation.fromDns(zone),
      });
      this.listener = this.loadBalancer.addListener("Https", {
        port: 443,
        protocol: elbv2.ApplicationProtocol.HTTPS,
        certificates: [certificate],
        sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
        open: false, // the security group already admits 443 from anywhere
        defaultTargetGroups: [this.targetGroup],
      });
      this.loadBalancer.addListener("HttpRedirect", {
        port: 80,
        protocol: elbv2.ApplicationProtocol.HTTP,
        open: false,
        defaultAction: elbv2.ListenerAction.redirect({ protocol: "HTTPS", port: "443", permanent: true }),
      });
    } else {
      this.listener = this.loadBalancer.addListener("Http", {
        port: 80,
        protocol: elbv2.ApplicationProtocol.HTTP,
        open: false, // the security group already admits 80 from anywhere
        defaultTargetGroups: [this.targetGroup],
      });
    }
    if (zone && publicName) {
      new route53.ARecord(this, "Alias", {
        zone,
        recordName: publicName,
        target: route53.RecordTarget.fromAlias(new route53targets.LoadBalancerTarget(this.loadBalancer)),
      });
    }

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
        gracePeriod: Duration.seconds(180),
      }),
      newInstancesProtectedFromScaleIn: stack.web.scaleInProtection,
      updatePolicy: autoscaling.UpdatePolicy.instanceRefresh({
        strategy: autoscaling.InstanceRefreshStrategy.ROLLING,
        minHealthyPercentage: 100,
        maxHealthyPercentage: 200,
        instanceWarmup: Duration.seconds(120),
      }),
      groupMetrics: [autoscaling.GroupMetrics.all()],
      notifications: [{ topic: this.notifications }],
    });
    this.group.attachToApplicationTargetGroup(this.targetGroup);
    // Seed 002's scaling: track the group's average CPU at the description's target.
    this.group.scaleOnCpuUtilization("CpuTargetTracking", {
      targetUtilizationPercent: stack.scaling.targetCpuPercent,
      estimatedInstanceWarmup: Duration.seconds(stack.scaling.aws.warmupSeconds),
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

export class WebStack extends Stack {
  readonly web: WebTier;
  constructor(scope: Construct, id: string, props: StackProps & WebTierProps) {
    super(scope, id, props);
    this.web = new WebTier(this, "Web", props);
  }
}
