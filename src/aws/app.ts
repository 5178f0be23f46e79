import { App, type Stack, Tags } from "aws-cdk-lib";
import type { ResolvedStack } from "../stack/index.ts";
import { AccessStack } from "./access/bastion.ts";
import type { DatabaseStack } from "./database/database.ts";
import type { DnsFailoverStack } from "./dns-failover/dns-failover.ts";
import type { ClusterStack } from "./ecs/cluster.ts";
import type { RepositoryStack } from "./ecs/repository.ts";
import type { ServiceStack } from "./ecs/service.ts";
import { stackIds } from "./naming.ts";
import { NetworkStack } from "./network/network.ts";
import type { SingleInstanceStack } from "./single-instance/single-instance.ts";
import { awsTopologies } from "./topologies/index.ts";
import { deployAfter } from "./topologies/wiring.ts";
import type { WebStack } from "./web/web-tier.ts";

export interface StayupStacks {
  network: NetworkStack;
  access?: AccessStack;
  database?: DatabaseStack;
  web?: WebStack;
  singleInstance?: SingleInstanceStack;
  /** Seed 002's secondary region, at its standby capacity until a failover. */
  secondaryNetwork?: NetworkStack;
  secondaryDatabase?: DatabaseStack;
  secondaryWeb?: WebStack;
  /** Route 53 failover, its health checks, alarms and Lambdas (us-east-1); needs aws.hostedZone. */
  dnsFailover?: DnsFailoverStack;
  /** Seed 004 (topology ecs): image repository, cluster with its capacity provider, service. */
  repository?: RepositoryStack;
  cluster?: ClusterStack;
  service?: ServiceStack;
  /** In deployment order (network → access → database → web), as in the seeds. */
  ordered: Stack[];
}

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
