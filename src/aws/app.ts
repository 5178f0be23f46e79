import { App, Tags } from "aws-cdk-lib";
import type { ResolvedStack } from "../stack/index.ts";
import { AccessStack } from "./access/bastion.ts";
import { stackIds } from "./naming.ts";
import type { StayupStacks } from "./stacks.ts";
import { NetworkStack } from "./network/network.ts";
import { awsTopologies } from "./topologies/index.ts";
import { deployAfter } from "./topologies/wiring.ts";

/**
 * Renders the stack description into CDK stacks. Every setting is read from `stack`; none is
 * repeated here. Works without credentials: the region and AZs come from the description.
 */
export function addStayupStacks(
  app: App,
  stack: ResolvedStack,
  bundleDir: string,
  options: { imageTag?: string } = {},
): StayupStacks {
  const ids = stackIds(stack);
  const env = { region: stack.regions.primary.name, account: process.env.CDK_DEFAULT_ACCOUNT };
  const common = { env, stack, terminationProtection: stack.deletionProtection };
  const networkStack = new NetworkStack(app, ids.network, {
    ...common,
    description: `stayup ${stack.environment}: VPC over ${stack.regions.primary.availabilityZones.length} AZs and security groups`,
  });
  const { network } = networkStack;
  const result: StayupStacks = { network: networkStack, ordered: [networkStack] };

  if (stack.aws.bastion && network.bastionSecurityGroup) {
    const access = new AccessStack(app, ids.access, {
      ...common,
      description: `stayup ${stack.environment}: SSH bastion with a stable Elastic IP`,
      vpc: network.vpc,
      securityGroup: network.bastionSecurityGroup,
    });
    result.access = deployAfter(result.ordered, access, networkStack);
  }

  awsTopologies[stack.topology]({ app, stack, bundleDir, ids, common, networkStack, result, options });

  // Listener, listener-rule and scalable-target tags are newer than cfn-lint's schema; neither needs them (their
  // load balancer and service have them).
  const tagging = {
    excludeResourceTypes: [
      "AWS::ElasticLoadBalancingV2::Listener",
      "AWS::ElasticLoadBalancingV2::ListenerRule",
      "AWS::ApplicationAutoScaling::ScalableTarget",
    ],
  };
  Tags.of(app).add("Project", "stayup", tagging);
  Tags.of(app).add("stayup:stack", stack.name, tagging);
  Tags.of(app).add("stayup:environment", stack.environment, tagging);
  return result;
}
