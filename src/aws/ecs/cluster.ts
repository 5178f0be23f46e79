import { Stack } from "aws-cdk-lib";
import * as autoscaling from "aws-cdk-lib/aws-autoscaling";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import type { Construct } from "constructs";
import type { ResolvedStack } from "../../stack/index.ts";
import { containerServiceArtifact } from "../../stack/service-artifact.ts";
import { ECS_AMAZON_LINUX_2023_PARAMETER, pinnedMachineImage } from "../machine-image.ts";
import { resourcePrefix } from "../naming.ts";
import { refreshWithoutWaiting } from "../web/web-tier.ts";
import { grantSessionManager } from "../session-manager.ts";
import type { EcsStackProps } from "./props.ts";

/** The container instances' group's name (stayup destroy clears its scale-in protection). */
export const containerInstanceGroupName = (stack: ResolvedStack) => `${resourcePrefix(stack)}-ecs`;
export const clusterName = (stack: ResolvedStack) => resourcePrefix(stack);
export const capacityProviderName = (stack: ResolvedStack) => `${resourcePrefix(stack)}-ec2`;

/**
 * Seed 004's cluster: the ECS cluster, its container instances' Auto Scaling group and the
 * capacity provider that scales it, in ONE stack (a capacity provider in another stack than its
 * cluster and group cannot be associated or deleted in order: aws/aws-cdk capacity-provider issues).
 */
export class ClusterStack extends Stack {
  readonly cluster: ecs.Cluster;
  readonly group: autoscaling.AutoScalingGroup;
  readonly capacityProvider: ecs.AsgCapacityProvider;
  readonly instanceSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: EcsStackProps) {
    super(scope, id, props);
    const { stack } = props;
    const prefix = resourcePrefix(stack);
    this.cluster = new ecs.Cluster(this, "Cluster", {
      clusterName: clusterName(stack),
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    // Tasks use awsvpc (their own interfaces and security group); the instances only reach AWS APIs.
    this.instanceSecurityGroup = new ec2.SecurityGroup(this, "InstanceSg", {
      vpc: props.vpc,
      description: `${prefix} container instances: no inbound, HTTPS/HTTP out (ECS, ECR, logs, packages)`,
      allowAllOutbound: false,
    });
    this.instanceSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs");
    this.instanceSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(80), "HTTP to packages");

    const role = new iam.Role(this, "InstanceRole", {
      assumedBy: new iam.ServicePrincipal("ec2.amazonaws.com"),
      description: `${prefix} container instances: join the cluster, Session Manager`,
    });
    // Session Manager without AmazonSSMManagedInstanceCore's region-wide parameter reads.
    grantSessionManager(role);
    const userData = ec2.UserData.forLinux();
    // Tasks (awsvpc) must not reach the instance metadata service, and through it the instance
    // role's credentials: the ECS agent blocks it for them (the ECS_CLUSTER line is CDK's).
    userData.addCommands("echo ECS_AWSVPC_BLOCK_IMDS=true >> /etc/ecs/ecs.config");
    // The user's container reads its AZ and task id from the container metadata file (its prelude:
    // container.ts); the counter reads them from the task metadata endpoint itself.
    if (containerServiceArtifact(stack.webService).kind === "command") {
      userData.addCommands("echo ECS_ENABLE_CONTAINER_METADATA=true >> /etc/ecs/ecs.config");
    }
    const launchTemplate = new ec2.LaunchTemplate(this, "LaunchTemplate", {
      launchTemplateName: `${prefix}-ecs`,
      // The ECS-optimized Amazon Linux 2023 AMI, pinned in cdk.context.json at the first deploy
      // (not AWS's newest at every deploy, which would replace every container instance unasked).
      machineImage: pinnedMachineImage(this, ECS_AMAZON_LINUX_2023_PARAMETER),
      instanceType: new ec2.InstanceType(stack.web.instanceTypes[0] as string),
      securityGroup: this.instanceSecurityGroup,
      role,
      userData,
      requireImdsv2: true,
      httpPutResponseHopLimit: 1,
      blockDevices: [
        {
          deviceName: "/dev/xvda",
          volume: ec2.BlockDeviceVolume.ebs(30, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
        },
      ],
      detailedMonitoring: true,
    });
    const notifications = new sns.Topic(this, "Notifications", {
      topicName: `${prefix}-ecs-notifications`,
      displayName: `stayup ${stack.environment}: container instance launches and terminations`,
      masterKey: kms.Alias.fromAliasName(this, "SnsKey", "alias/aws/sns"),
      enforceSSL: true,
    });
    this.group = new autoscaling.AutoScalingGroup(this, "Group", {
      autoScalingGroupName: containerInstanceGroupName(stack),
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      mixedInstancesPolicy: {
        launchTemplate,
        launchTemplateOverrides: stack.web.instanceTypes.map((type) => ({
          instanceType: new ec2.InstanceType(type),
        })),
        instancesDistribution: { onDemandPercentageAboveBaseCapacity: 100 },
      },
      minCapacity: stack.web.capacity.min,
      maxCapacity: stack.web.capacity.max,
      // No desired capacity: the capacity provider's managed scaling owns it.
      newInstancesProtectedFromScaleIn: stack.web.scaleInProtection,
      groupMetrics: [autoscaling.GroupMetrics.all()],
      notifications: [{ topic: notifications }],
      // Replaced by instance refresh that refreshes protected instances (ECS drains them first:
      // managed draining) instead of waiting an hour for their protection to be lifted.
      updatePolicy: refreshWithoutWaiting(stack.scaling.aws.warmupSeconds),
    });
    this.capacityProvider = new ecs.AsgCapacityProvider(this, "CapacityProvider", {
      capacityProviderName: capacityProviderName(stack),
      autoScalingGroup: this.group,
      machineImageType: ecs.MachineImageType.AMAZON_LINUX_2,
      enableManagedScaling: true,
      targetCapacityPercent: stack.ecs.clusterTargetUtilizationPercent,
      // Follows the environment's scale-in protection: ECS lifts it from an instance once it runs no task.
      enableManagedTerminationProtection: stack.web.scaleInProtection,
      enableManagedDraining: true,
      instanceWarmupPeriod: stack.scaling.aws.warmupSeconds,
    });
    this.cluster.addAsgCapacityProvider(this.capacityProvider);
  }
}
