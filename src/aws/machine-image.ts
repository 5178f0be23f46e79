import { Stack, Token } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import type { Construct } from "constructs";

/** Amazon Linux 2023's current AMI, as AWS publishes it in SSM (web instances, bastion). */
export const AMAZON_LINUX_2023_PARAMETER =
  "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
/** The ECS-optimized Amazon Linux 2023 AMI recommended for container instances. */
export const ECS_AMAZON_LINUX_2023_PARAMETER =
  "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id";

/**
 * What an offline synthesis (no account: `stayup check`, `stayup cost`, the tests) puts where the
 * pinned AMI goes. Never deployed: a deploy synthesizes with the account known, and then the AMI is
 * the one recorded in cdk.context.json.
 */
export const OFFLINE_PLACEHOLDER_AMI = "ami-00000000000000000";

/**
 * An AMI that stays the same from one deploy to the next. With the account known (the CDK CLI's
 * synthesis, for `stayup deploy` or `cdk deploy`), the SSM parameter is read ONCE and recorded in
 * cdk.context.json (CDK's context lookup): later deploys reuse it until that entry is reset
 * (`npx cdk context --reset <key>`), so AWS publishing a newer AMI never replaces every instance
 * unasked. (Reading the parameter at deploy time instead, CDK's default, takes the newest AMI on
 * every deploy.) Offline, the placeholder above.
 */
export function pinnedMachineImage(scope: Construct, parameterName: string): ec2.IMachineImage {
  const stack = Stack.of(scope);
  if (Token.isUnresolved(stack.account) || Token.isUnresolved(stack.region)) {
    if (Token.isUnresolved(stack.region)) throw new Error("pinnedMachineImage needs a stack with a region");
    return ec2.MachineImage.genericLinux({ [stack.region]: OFFLINE_PLACEHOLDER_AMI });
  }
  return ec2.MachineImage.fromSsmParameter(parameterName, { cachedInContext: true });
}
