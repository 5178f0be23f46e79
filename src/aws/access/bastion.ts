import { Stack, type StackProps } from "aws-cdk-lib";
import * as autoscaling from "aws-cdk-lib/aws-autoscaling";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { grantSessionManager } from "../session-manager.ts";
import type { ResolvedStack } from "../../stack/index.ts";
import { AMAZON_LINUX_2023_PARAMETER, pinnedMachineImage } from "../machine-image.ts";
import { resourcePrefix } from "../naming.ts";
import { StableElasticIp } from "./elastic-ip.ts";

export interface SshBastionProps {
  stack: ResolvedStack;
  vpc: ec2.IVpc;
  securityGroup: ec2.ISecurityGroup;
}

/**
 * The optional SSH bastion of tutorial 06: a group of 1 in the public subnets that re-attaches its
 * Elastic IP at boot. Shell access without it is Session Manager (no port open).
 */
export class SshBastion extends Construct {
  readonly group: autoscaling.AutoScalingGroup;
  readonly address: StableElasticIp;

  constructor(scope: Construct, id: string, props: SshBastionProps) {
    super(scope, id);
    const { stack } = props;
    const bastion = stack.aws.bastion;
    if (!bastion) throw new Error("SshBastion needs aws.bastion in the stack description");
    const name = `${resourcePrefix(stack)}-bastion`;
    const role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("ec2.amazonaws.com"),
      description: `${name}: re-associate its Elastic IP, Session Manager`,
    });
    grantSessionManager(role);
    this.address = new StableElasticIp(this, "ElasticIp", { role, autoScalingGroupName: name, name });
    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      "set -euo pipefail",
      'IMDS_TOKEN=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
      'INSTANCE_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" http://169.254.169.254/latest/meta-data/instance-id)',
      'REGION=$(curl -sf -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" http://169.254.169.254/latest/meta-data/placement/region)',
      ...this.address.bootCommands,
    );
    const launchTemplate = new ec2.LaunchTemplate(this, "LaunchTemplate", {
      launchTemplateName: name,
      machineImage: pinnedMachineImage(this, AMAZON_LINUX_2023_PARAMETER),
      instanceType: new ec2.InstanceType(bastion.instanceType),
      securityGroup: props.securityGroup,
      role,
      userData,
      requireImdsv2: true,
      httpPutResponseHopLimit: 1,
      // Needed to reach the EC2 API and claim the Elastic IP, which then replaces this address.
      associatePublicIpAddress: true,
      detailedMonitoring: true,
      blockDevices: [
        {
          deviceName: "/dev/xvda",
          volume: ec2.BlockDeviceVolume.ebs(8, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
        },
      ],
    });
    this.group = new autoscaling.AutoScalingGroup(this, "Group", {
      autoScalingGroupName: name,
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      launchTemplate,
      minCapacity: 1,
      maxCapacity: 1,
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({ maxBatchSize: 1, minInstancesInService: 0 }),
    });
  }
}

export class AccessStack extends Stack {
  readonly bastion: SshBastion;
  constructor(scope: Construct, id: string, props: StackProps & SshBastionProps) {
    super(scope, id, props);
    this.bastion = new SshBastion(this, "Bastion", props);
  }
}
