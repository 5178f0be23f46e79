import type { StackProps } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type { ResolvedStack } from "../../stack/index.ts";

/** What the ecs topology's stacks on the primary region's VPC (cluster, service) all take. */
export interface EcsStackProps extends StackProps {
  stack: ResolvedStack;
  vpc: ec2.IVpc;
}
