import { DatabaseStack } from "../database/database.ts";
import { resolveImageTag } from "../ecs/image.ts";
import { addEcsStacks } from "../ecs/topology.ts";
import type { AwsTopologyBuilder } from "./builder.ts";

/**
 * Seed 004: ElastiCache, the image repository, the cluster (cluster, group, capacity provider) and
 * the service behind the ALB. One region: a secondary region is rendered for load-balanced only.
 */
export const buildEcs: AwsTopologyBuilder = ({ app, stack, ids, common, networkStack, result, options }) => {
  const { network } = networkStack;
  result.database = new DatabaseStack(app, ids.database, {
    ...common,
    description: `stayup ${stack.environment}: ElastiCache Redis`,
    vpc: network.vpc,
    securityGroup: network.redisSecurityGroup,
  });
  result.database.addStackDependency(networkStack, "deploys after it, as in the seeds");
  const ecsStacks = addEcsStacks(app, {
    stack,
    common,
    ids,
    network: networkStack,
    redis: result.database.redis,
    imageTag: resolveImageTag(stack, options.imageTag),
  });
  ecsStacks.service.addStackDependency(result.database, "its tasks connect to Redis");
  Object.assign(result, ecsStacks);
  result.ordered.push(result.database, ecsStacks.repository, ecsStacks.cluster, ecsStacks.service);
};
