import { Stack, type StackProps, Tags } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { ResolvedStack } from "../../stack/index.ts";
import { nameUnlessRetained, removalPolicyOf, resourcePrefix } from "../naming.ts";

export interface StayupNetworkProps {
  stack: ResolvedStack;
  /** The region's AZs (the primary's unless given). */
  availabilityZones?: string[];
}

/**
 * The VPC of tutorials 06/07 over the description's AZs: public subnets (load balancer, NAT,
 * bastion), private subnets with egress (web instances), isolated subnets (Redis); and the
 * security groups chained ALB → web → Redis, so nothing but the ALB reaches the web port and
 * nothing but web reaches Redis.
 */
export class StayupNetwork extends Construct {
  readonly vpc: ec2.Vpc;
  readonly loadBalancerSecurityGroup: ec2.SecurityGroup;
  readonly webSecurityGroup: ec2.SecurityGroup;
  readonly redisSecurityGroup: ec2.SecurityGroup;
  readonly bastionSecurityGroup?: ec2.SecurityGroup;
  /** The single-instance topology's instance, which faces the internet itself. */
  readonly singleInstanceSecurityGroup?: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: StayupNetworkProps) {
    super(scope, id);
    const { stack } = props;
    const azs = props.availabilityZones ?? stack.regions.primary.availabilityZones;
    const prefix = resourcePrefix(stack);
    const flowLogGroup = new logs.LogGroup(this, "FlowLogs", {
      logGroupName: nameUnlessRetained(stack, `/stayup/${prefix}/vpc-flow-logs`),
      retention: stack.aws.logRetentionDays as logs.RetentionDays,
      removalPolicy: removalPolicyOf(stack),
    });
    // The single instance lives in a public subnet with its own address and Redis on itself:
    // nothing of it is private, so it gets neither private subnets nor NAT gateways (each NAT
    // gateway holds an Elastic IP, of the 5 a region allows by default, and costs by the hour).
    const privateTiers = stack.topology !== "single-instance";
    this.vpc = new ec2.Vpc(this, "Vpc", {
      ipAddresses: ec2.IpAddresses.cidr(stack.aws.vpcCidr),
      availabilityZones: azs,
      // One NAT gateway saves money in dev; one per AZ keeps egress alive when an AZ fails.
      natGateways: !privateTiers ? 0 : stack.network.natGateways === "one" ? 1 : azs.length,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
        ...(privateTiers
          ? [
              { name: "web", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
              { name: "redis", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
            ]
          : []),
      ],
      flowLogs: {
        all: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
          trafficType: ec2.FlowLogTrafficType.ALL,
        },
      },
      // Rendered as a Lambda-backed custom resource; the default group is unused instead (nothing
      // is ever placed in it), which cfn-guard's rule about it is acknowledged for.
      restrictDefaultSecurityGroup: false,
    });
    Tags.of(this.vpc).add("Name", `${prefix}-vpc`);

    const port = stack.webService.port;
    this.loadBalancerSecurityGroup = new ec2.SecurityGroup(this, "LoadBalancerSg", {
      vpc: this.vpc,
      description: `${prefix} load balancer: HTTP/HTTPS from anywhere, to the web port only`,
      allowAllOutbound: false,
    });
    this.webSecurityGroup = new ec2.SecurityGroup(this, "WebSg", {
      vpc: this.vpc,
      description: `${prefix} web instances: the web port from the load balancer only`,
      allowAllOutbound: false,
    });
    this.redisSecurityGroup = new ec2.SecurityGroup(this, "RedisSg", {
      vpc: this.vpc,
      description: `${prefix} Redis: 6379 from the web instances only`,
      allowAllOutbound: false,
    });
    this.loadBalancerSecurityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(80), "HTTP from anywhere");
    this.loadBalancerSecurityGroup.addIngressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      "HTTPS from anywhere",
    );
    this.webSecurityGroup.connections.allowFrom(
      this.loadBalancerSecurityGroup,
      ec2.Port.tcp(port),
      "web port from the load balancer",
    );
    this.redisSecurityGroup.connections.allowFrom(
      this.webSecurityGroup,
      ec2.Port.tcp(6379),
      "Redis from web",
    );
    allowInstanceEgress(this.webSecurityGroup);

    if (stack.topology === "single-instance") {
      this.singleInstanceSecurityGroup = new ec2.SecurityGroup(this, "SingleInstanceSg", {
        vpc: this.vpc,
        description: `${prefix} single instance: HTTP from anywhere (it has no load balancer)`,
        allowAllOutbound: false,
      });
      this.singleInstanceSecurityGroup.addIngressRule(
        ec2.Peer.anyIpv4(),
        ec2.Port.tcp(80),
        "HTTP from anywhere",
      );
      allowInstanceEgress(this.singleInstanceSecurityGroup);
    }

    if (stack.aws.bastion) {
      this.bastionSecurityGroup = new ec2.SecurityGroup(this, "BastionSg", {
        vpc: this.vpc,
        description: `${prefix} SSH bastion: port 22 from ${stack.aws.bastion.allowedCidr} only`,
        allowAllOutbound: false,
      });
      this.bastionSecurityGroup.addIngressRule(
        ec2.Peer.ipv4(stack.aws.bastion.allowedCidr),
        ec2.Port.tcp(22),
        "SSH from the configured range",
      );
      allowInstanceEgress(this.bastionSecurityGroup);
      this.webSecurityGroup.connections.allowFrom(
        this.bastionSecurityGroup,
        ec2.Port.tcp(22),
        "SSH from the bastion",
      );
    }
  }
}

/**
 * What an instance must reach: HTTPS for Session Manager, S3 (the service bundle), Secrets Manager,
 * CloudWatch Logs and package repositories; HTTP for the repositories that still use it.
 */
function allowInstanceEgress(group: ec2.SecurityGroup): void {
  group.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and packages");
  group.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(80), "HTTP to package repositories");
}

export class NetworkStack extends Stack {
  readonly network: StayupNetwork;
  constructor(scope: Construct, id: string, props: StackProps & StayupNetworkProps) {
    super(scope, id, props);
    this.network = new StayupNetwork(this, "Network", props);
  }
}
