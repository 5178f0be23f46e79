import { type CfnResource, Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as acm from "aws-cdk-lib/aws-certificatemanager";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as route53 from "aws-cdk-lib/aws-route53";
import * as route53targets from "aws-cdk-lib/aws-route53-targets";
import * as s3 from "aws-cdk-lib/aws-s3";
import type { Construct } from "constructs";
import { derive, type ResolvedStack } from "../../stack/index.ts";
import { regionalName } from "../naming.ts";

/**
 * The pieces every load-balanced topology shares (EC2 instances or ECS tasks behind it), created
 * directly in the caller's scope so their logical ids do not depend on who calls.
 */

/** Paths the instances serve that the public listener never forwards. */
export const PRIVATE_PATHS = ["/metrics", "/metrics/*"] as const;

/** One year, subdomains included (what HSTS preload lists ask for, without opting into preload). */
export const HSTS_HEADER_VALUE = "max-age=31536000; includeSubDomains";

const loadBalancingAlgorithms = {
  weighted_random: elbv2.TargetGroupLoadBalancingAlgorithmType.WEIGHTED_RANDOM,
  round_robin: elbv2.TargetGroupLoadBalancingAlgorithmType.ROUND_ROBIN,
  least_outstanding_requests: elbv2.TargetGroupLoadBalancingAlgorithmType.LEAST_OUTSTANDING_REQUESTS,
} as const;

/** A target group with the description's health check, deregistration delay and algorithm. */
export function addTargetGroup(
  scope: Construct,
  props: { stack: ResolvedStack; vpc: ec2.IVpc; targetType: elbv2.TargetType; name: string },
): elbv2.ApplicationTargetGroup {
  const { stack } = props;
  const hc = stack.targetGroup.healthCheck;
  return new elbv2.ApplicationTargetGroup(scope, "TargetGroup", {
    targetGroupName: props.name,
    vpc: props.vpc,
    port: stack.webService.port,
    protocol: elbv2.ApplicationProtocol.HTTP,
    targetType: props.targetType,
    deregistrationDelay: Duration.seconds(derive(stack).deregistrationDelay.seconds),
    // weighted_random with anomaly mitigation sends less traffic to a target that fails more than
    // its peers while its health check still passes (a gray failure), as outlier detection does locally.
    loadBalancingAlgorithmType: loadBalancingAlgorithms[stack.targetGroup.aws.algorithm],
    enableAnomalyMitigation:
      stack.targetGroup.aws.algorithm === "weighted_random"
        ? stack.targetGroup.aws.anomalyMitigation
        : undefined,
    healthCheck: {
      path: hc.path,
      interval: Duration.seconds(hc.aws.intervalSeconds),
      timeout: Duration.seconds(hc.aws.timeoutSeconds),
      healthyThresholdCount: hc.healthyThreshold,
      unhealthyThresholdCount: hc.unhealthyThreshold,
      healthyHttpCodes: "200",
    },
  });
}

export interface PublicLoadBalancerProps {
  stack: ResolvedStack;
  vpc: ec2.IVpc;
  securityGroup: ec2.ISecurityGroup;
  targetGroup: elbv2.ApplicationTargetGroup;
  /** Which region it serves; decides the DNS name it publishes. */
  role: "primary" | "secondary";
  /** More names aliased to it and on its certificate (`www.<dns.name>`). */
  extraNames?: string[];
  /**
   * Its name, distinct per topology (`<prefix>-alb`, `<prefix>-ecs-alb`): two topologies' stacks
   * existing at once during a switch must not claim the same load balancer name.
   */
  name: string;
}

export interface PublicLoadBalancer {
  loadBalancer: elbv2.ApplicationLoadBalancer;
  /** The listener that forwards to the target group (HTTPS when configured). */
  listener: elbv2.ApplicationListener;
  /** The name clients use (with a hosted zone), else undefined. */
  publicName?: string;
}

/**
 * Tutorial 07's internet-facing ALB with access logs; with `aws.https` an ACM certificate for
 * `dns.name`, an HTTPS listener and a 301 from HTTP; with `aws.hostedZone` alias records.
 */
export function addPublicLoadBalancer(scope: Construct, props: PublicLoadBalancerProps): PublicLoadBalancer {
  const { stack } = props;
  const removalPolicy = stack.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
  const accessLogs = new s3.Bucket(scope, "AccessLogs", {
    // ALB access logs support only S3-managed keys.
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    versioned: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    lifecycleRules: [
      // An expired log becomes a noncurrent version: remove it a day later, not never.
      {
        id: "expire-logs",
        expiration: Duration.days(stack.aws.logRetentionDays),
        noncurrentVersionExpiration: Duration.days(1),
        abortIncompleteMultipartUploadAfter: Duration.days(1),
      },
      // Then the delete markers left with no version behind them.
      { id: "expired-delete-markers", expiredObjectDeleteMarker: true },
    ],
    removalPolicy,
    // Where the bucket is destroyed with the stack (no deletion protection: dev), CDK's handler
    // denies new writes and deletes every version first: a non-empty bucket fails the delete.
    autoDeleteObjects: !stack.deletionProtection,
  });
  // CDK's shared auto-delete handler names its role both by GetAtt and DependsOn (cfn-lint W3005).
  const autoDelete = Stack.of(scope).node.tryFindChild("Custom::S3AutoDeleteObjectsCustomResourceProvider");
  (autoDelete?.node.tryFindChild("Handler") as CfnResource | undefined)?.addDeletionOverride("DependsOn");
  const loadBalancer = new elbv2.ApplicationLoadBalancer(scope, "LoadBalancer", {
    loadBalancerName: props.name,
    vpc: props.vpc,
    internetFacing: true,
    vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
    securityGroup: props.securityGroup,
    deletionProtection: stack.deletionProtection,
    dropInvalidHeaderFields: true,
  });
  loadBalancer.logAccessLogs(accessLogs, "alb");

  const hostedZone = stack.aws.hostedZone;
  const zone = hostedZone
    ? route53.HostedZone.fromHostedZoneAttributes(scope, "Zone", {
        hostedZoneId: hostedZone.id,
        zoneName: hostedZone.name,
      })
    : undefined;
  // dns.name itself, or `<role>.<dns.name>` when a failover record owns dns.name.
  const publicName = regionalName(stack, props.role);
  const extraNames = publicName ? (props.extraNames ?? []) : [];
  let listener: elbv2.ApplicationListener;
  if (stack.aws.https && zone && stack.dns && publicName) {
    const alternatives = [...(publicName === stack.dns.name ? [] : [publicName]), ...extraNames];
    const certificate = new acm.Certificate(scope, "Certificate", {
      domainName: stack.dns.name,
      subjectAlternativeNames: alternatives.length > 0 ? alternatives : undefined,
      validation: acm.CertificateValidation.fromDns(zone),
    });
    listener = loadBalancer.addListener("Https", {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [certificate],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      open: false, // the security group already admits 443 from anywhere
      defaultTargetGroups: [props.targetGroup],
    });
    // Browsers that reached the site over HTTPS keep to HTTPS, even if a link says http://.
    listener.setAttribute("routing.http.response.strict_transport_security.header_value", HSTS_HEADER_VALUE);
    loadBalancer.addListener("HttpRedirect", {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      open: false,
      defaultAction: elbv2.ListenerAction.redirect({ protocol: "HTTPS", port: "443", permanent: true }),
    });
  } else {
    listener = loadBalancer.addListener("Http", {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      open: false, // the security group already admits 80 from anywhere
      defaultTargetGroups: [props.targetGroup],
    });
  }
  // /metrics is for monitoring from inside the VPC, not for the internet: the public listener
  // answers it itself, before any rule forwards to an instance or task.
  listener.addAction("NoPublicMetrics", {
    priority: 1,
    conditions: [elbv2.ListenerCondition.pathPatterns([...PRIVATE_PATHS])],
    action: elbv2.ListenerAction.fixedResponse(404, { contentType: "text/plain", messageBody: "not found" }),
  });
  if (zone && publicName) {
    new route53.ARecord(scope, "Alias", {
      zone,
      recordName: publicName,
      target: route53.RecordTarget.fromAlias(new route53targets.LoadBalancerTarget(loadBalancer)),
    });
    extraNames.forEach((name, i) => {
      new route53.ARecord(scope, `Alias${i + 2}`, {
        zone,
        recordName: name,
        target: route53.RecordTarget.fromAlias(new route53targets.LoadBalancerTarget(loadBalancer)),
      });
    });
  }
  return { loadBalancer, listener, publicName };
}
