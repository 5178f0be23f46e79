import { Stack } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";

export interface StableElasticIpProps {
  /** Role of the instances that claim the address. */
  role: iam.IRole;
  /** Name of the group whose instances may claim it. */
  autoScalingGroupName: string;
  name: string;
}

/**
 * An Elastic IP that the current instance of a group of 1 re-associates to itself at boot
 * (seeds 000 and 003), with `ec2:AssociateAddress` scoped to this one allocation and to the
 * instances of that group (the seed granted it on `*`).
 */
export class StableElasticIp extends Construct {
  readonly eip: ec2.CfnEIP;
  /** User-data lines; expect $INSTANCE_ID and $REGION (from IMDSv2) to be set. */
  readonly bootCommands: string[];

  constructor(scope: Construct, id: string, props: StableElasticIpProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.eip = new ec2.CfnEIP(this, "Address", { domain: "vpc", tags: [{ key: "Name", value: props.name }] });
    const arn = (resource: string) =>
      `arn:${stack.partition}:ec2:${stack.region}:${stack.account}:${resource}`;
    props.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "AssociateThisElasticIp",
        actions: ["ec2:AssociateAddress"],
        resources: [arn(`elastic-ip/${this.eip.attrAllocationId}`)],
      }),
    );
    props.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "AssociateOnlyWithInstancesOfThisGroup",
        actions: ["ec2:AssociateAddress"],
        resources: [arn("instance/*"), arn("network-interface/*")],
        conditions: {
          StringEquals: { "aws:ResourceTag/aws:autoscaling:groupName": props.autoScalingGroupName },
        },
      }),
    );
    this.bootCommands = [
      // The previous instance may still hold the address while it terminates: reassociate.
      `aws ec2 associate-address --region "$REGION" --instance-id "$INSTANCE_ID" --allocation-id ${this.eip.attrAllocationId} --allow-reassociation`,
    ];
  }
}
