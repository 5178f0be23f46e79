import { SingleInstanceStack } from "../single-instance/single-instance.ts";
import type { AwsTopologyBuilder } from "./builder.ts";
import { deployAfter, onPrimaryNetwork } from "./wiring.ts";

/** Seed 003: a self-healing group of one with a stable Elastic IP and a data volume, no load balancer. */
export const buildSingleInstance: AwsTopologyBuilder = (context) => {
  const { app, bundleDir, ids, networkStack, result } = context;
  const securityGroup = networkStack.network.singleInstanceSecurityGroup;
  if (!securityGroup) throw new Error("single-instance topology without its security group");
  const singleInstance = new SingleInstanceStack(app, ids.singleInstance, {
    ...onPrimaryNetwork(context, "self-healing single instance with a stable Elastic IP"),
    securityGroup,
    bundleDir,
  });
  result.singleInstance = deployAfter(result.ordered, singleInstance, networkStack);
};
