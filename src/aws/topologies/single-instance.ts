import { SingleInstanceStack } from "../single-instance/single-instance.ts";
import type { AwsTopologyBuilder } from "./builder.ts";

/** Seed 003: a self-healing group of one with a stable Elastic IP and a data volume, no load balancer. */
export const buildSingleInstance: AwsTopologyBuilder = ({
  app,
  stack,
  bundleDir,
  ids,
  common,
  networkStack,
  result,
}) => {
  const { network } = networkStack;
  if (!network.singleInstanceSecurityGroup)
    throw new Error("single-instance topology without its security group");
  result.singleInstance = new SingleInstanceStack(app, ids.singleInstance, {
    ...common,
    description: `stayup ${stack.environment}: self-healing single instance with a stable Elastic IP`,
    vpc: network.vpc,
    securityGroup: network.singleInstanceSecurityGroup,
    bundleDir,
  });
  result.singleInstance.addStackDependency(networkStack, "deploys after it, as in the seeds");
  result.ordered.push(result.singleInstance);
};
