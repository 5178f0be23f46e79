import { CfnOutput, RemovalPolicy, Size, Stack, type StackProps } from "aws-cdk-lib";
import * as autoscaling from "aws-cdk-lib/aws-autoscaling";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import type { ResolvedStack } from "../../stack/index.ts";
import { StableElasticIp } from "../access/elastic-ip.ts";
import { addNightlyStop } from "../nightly-stop.ts";
import { resourcePrefix } from "../naming.ts";
import { WebServiceLaunchTemplate } from "../web/launch-template.ts";

export interface SelfHealingInstanceProps {
  stack: ResolvedStack;
  vpc: ec2.IVpc;
  securityGroup: ec2.ISecurityGroup;
  bundleDir: string;
}

/**
 * Seed 003: a self-healing single instance without a load balancer. A group of 1 whose instance
 * re-associates a stable Elastic IP at boot and attaches a data volume that outlives it (Redis's
 * append-only file lives there). An EBS volume lives in one AZ, so the group is pinned to it: this
 * heals instance failures, not an AZ outage; the load-balanced topology is the one that does.
 */
export class SelfHealingInstance extends Construct {
  readonly group: autoscaling.AutoScalingGroup;
  readonly address: StableElasticIp;
  readonly dataVolume: ec2.Volume;

  constructor(scope: Construct, id: string, props: SelfHealingInstanceProps) {
    super(scope, id);
    const { stack } = props;
    const name = `${resourcePrefix(stack)}-single`;
    const az = stack.regions.primary.availabilityZones[0] as string;
    const stackScope = Stack.of(this);
    this.dataVolume = new ec2.Volume(this, "DataVolume", {
      volumeName: `${name}-data`,
      availabilityZone: az,
      size: Size.gibibytes(stack.aws.singleInstance.dataVolumeGiB),
      volumeType: ec2.EbsDeviceVolumeType.GP3,
      encrypted: true,
      removalPolicy: stack.deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
    });
    const serial = "${VOLUME_ID/-/}";
    const arn = (resource: string) =>
      `arn:${stackScope.partition}:ec2:${stackScope.region}:${stackScope.account}:${resource}`;
    let address: StableElasticIp | undefined;
    const launch = new WebServiceLaunchTemplate(this, "Instance", {
      stack,
      name,
      securityGroup: props.securityGroup,
      redis: { kind: "on-instance" },
      instanceType: stack.web.instanceTypes[0] as string,
      // No load balancer in front: the instance itself answers on the HTTP port.
      port: 80,
      bundleDir: props.bundleDir,
      // Public subnet, no NAT: a public address until the Elastic IP replaces it at boot.
      associatePublicIpAddress: true,
      bootCommands: (role) => {
        address = new StableElasticIp(this, "ElasticIp", { role, autoScalingGroupName: name, name });
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            sid: "AttachTheDataVolume",
            actions: ["ec2:AttachVolume"],
            resources: [arn(`volume/${this.dataVolume.volumeId}`)],
          }),
        );
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            sid: "AttachOnlyToInstancesOfThisGroup",
            actions: ["ec2:AttachVolume"],
            resources: [arn("instance/*")],
            conditions: { StringEquals: { "aws:ResourceTag/aws:autoscaling:groupName": name } },
          }),
        );
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            sid: "WaitForTheVolume",
            // Describe* calls do not support resource-level permissions.
            actions: ["ec2:DescribeVolumes"],
            resources: ["*"],
          }),
        );
        return [
          ...address.bootCommands,
          `VOLUME_ID=${this.dataVolume.volumeId}`,
          // The old instance may still hold the volume while it terminates.
          'aws ec2 wait volume-available --region "$REGION" --volume-ids "$VOLUME_ID"',
          'aws ec2 attach-volume --region "$REGION" --volume-id "$VOLUME_ID" --instance-id "$INSTANCE_ID" --device /dev/sdf',
          `DEVICE=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}`,
          'until [ -e "$DEVICE" ]; do sleep 1; done',
          'blkid "$DEVICE" || mkfs.xfs "$DEVICE"',
          'install -d /var/lib/stayup && mount "$DEVICE" /var/lib/stayup',
          "install -d -o redis6 -g redis6 /var/lib/stayup/redis",
          "cat > /etc/systemd/system/stayup-redis.service <<'EOF'",
          "[Unit]",
          "Description=Redis for stayup (data on the volume that follows the instance)",
          "[Service]",
          "User=redis6",
          "ExecStart=/usr/bin/redis6-server --bind 127.0.0.1 --port 6379 --dir /var/lib/stayup/redis --appendonly yes --appendfsync everysec",
          "Restart=always",
          "[Install]",
          "WantedBy=multi-user.target",
          "EOF",
          "systemctl daemon-reload && systemctl enable --now stayup-redis",
        ];
      },
    });
    if (!address) throw new Error("the launch template did not ask for boot commands");
    this.address = address;
    this.group = new autoscaling.AutoScalingGroup(this, "Group", {
      autoScalingGroupName: name,
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC, availabilityZones: [az] },
      launchTemplate: launch.launchTemplate,
      minCapacity: 1,
      maxCapacity: 1,
      // One instance cannot be refreshed without downtime; replace it in place.
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({ maxBatchSize: 1, minInstancesInService: 0 }),
    });
    addNightlyStop(this.group, stack.nightlyStop, { min: 1, desired: 1, max: 1 });
    new CfnOutput(this, "PublicIp", {
      value: this.address.eip.ref,
      description: "The stable address of the instance",
    });
  }
}

export class SingleInstanceStack extends Stack {
  readonly instance: SelfHealingInstance;
  constructor(scope: Construct, id: string, props: StackProps & SelfHealingInstanceProps) {
    super(scope, id, props);
    this.instance = new SelfHealingInstance(this, "SingleInstance", props);
  }
}
