import type { App, Stack, StackProps } from "aws-cdk-lib";
import type { ResolvedStack } from "../../stack/index.ts";
import { DatabaseStack, type DatabaseStackProps } from "../database/database.ts";
import type { NetworkStack } from "../network/network.ts";
import type { AwsTopologyContext } from "./builder.ts";

/**
 * Puts `built` next in deployment order, after the stack it builds on: the seeds deploy each
 * stack after the one whose outputs it reads (network → database → web).
 */
export function deployAfter<T extends Stack>(ordered: Stack[], built: T, buildsOn: Stack): T {
  built.addStackDependency(buildsOn, "deploys after it, as in the seeds");
  ordered.push(built);
  return built;
}

/** A stack of the primary region on its network's VPC, described as `stayup <env>: <what>`. */
export function onPrimaryNetwork({ common, stack, networkStack }: AwsTopologyContext, what: string) {
  return { ...common, description: `stayup ${stack.environment}: ${what}`, vpc: networkStack.network.vpc };
}

/** A region's ElastiCache, in its network's VPC behind the network's Redis security group. */
export function databaseIn(
  app: App,
  id: string,
  networkStack: NetworkStack,
  props: StackProps &
    Pick<DatabaseStackProps, "globalDatastore"> & { stack: ResolvedStack; description: string },
): DatabaseStack {
  const { network } = networkStack;
  return new DatabaseStack(app, id, {
    ...props,
    vpc: network.vpc,
    securityGroup: network.redisSecurityGroup,
  });
}

/** The primary region's ElastiCache (load-balanced and ecs), next in order after the network. */
export function addPrimaryDatabase(
  context: AwsTopologyContext,
  extra: Pick<DatabaseStackProps, "globalDatastore" | "crossRegionReferences"> = {},
): DatabaseStack {
  const { app, stack, ids, common, networkStack, result } = context;
  const database = databaseIn(app, ids.database, networkStack, {
    ...common,
    ...extra,
    description: `stayup ${stack.environment}: ElastiCache Redis`,
  });
  return deployAfter(result.ordered, database, networkStack);
}
