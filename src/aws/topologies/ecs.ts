import { resolveImageTag } from "../ecs/image.ts";
import { addEcsStacks } from "../ecs/topology.ts";
import type { AwsTopologyBuilder } from "./builder.ts";
import { addPrimaryDatabase } from "./wiring.ts";

/**
 * Seed 004: ElastiCache, the image repository, the cluster (cluster, group, capacity provider) and
 * the service behind the ALB. One region: a secondary region is rendered for load-balanced only.
 */
export const buildEcs: AwsTopologyBuilder = (context) => {
  const { app, stack, ids, common, networkStack, result, options } = context;
  result.database = addPrimaryDatabase(context);
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
  result.ordered.push(ecsStacks.repository, ecsStacks.cluster, ecsStacks.service);
};
