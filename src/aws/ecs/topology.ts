import type { App, StackProps } from "aws-cdk-lib";
import type { ResolvedStack } from "../../stack/index.ts";
import type { StayupRedis } from "../database/database.ts";
import type { stackIds } from "../naming.ts";
import type { NetworkStack } from "../network/network.ts";
import { capacityProviderName, ClusterStack } from "./cluster.ts";
import { RepositoryStack } from "./repository.ts";
import { ServiceStack } from "./service.ts";

export interface EcsStacks {
  repository: RepositoryStack;
  cluster: ClusterStack;
  service: ServiceStack;
}

/**
 * Seed 004's topology after the network and database stacks: the image repository, the cluster
 * (cluster, group, capacity provider in one stack) and the service, in that order.
 */
export function addEcsStacks(
  app: App,
  props: {
    stack: ResolvedStack;
    common: StackProps & { stack: ResolvedStack };
    ids: ReturnType<typeof stackIds>;
    network: NetworkStack;
    redis: StayupRedis;
    imageTag: string;
  },
): EcsStacks {
  const { stack, common, ids } = props;
  const env = stack.environment;
  const repository = new RepositoryStack(app, ids.repository, {
    ...common,
    description: `stayup ${env}: ECR repository of the web image (${env}-<git sha> tags)`,
  });
  const cluster = new ClusterStack(app, ids.cluster, {
    ...common,
    description: `stayup ${env}: ECS cluster, its container instances' group and capacity provider`,
    vpc: props.network.network.vpc,
  });
  cluster.addStackDependency(props.network, "deploys after it, as in the seeds");
  const service = new ServiceStack(app, ids.service, {
    ...common,
    description: `stayup ${env}: ALB and the ECS service (${stack.ecs.placement} placement, task auto scaling)`,
    vpc: props.network.network.vpc,
    cluster: cluster.cluster,
    capacityProviderName: cluster.capacityProvider.capacityProviderName,
    // The association is added to the cluster at synthesis (a CDK aspect): depend on the cluster's
    // whole subtree, which includes it.
    capacityProviderAssociation: cluster.cluster,
    repository: repository.repository,
    imageTag: props.imageTag,
    loadBalancerSecurityGroup: props.network.network.loadBalancerSecurityGroup,
    taskSecurityGroup: props.network.network.webSecurityGroup,
    redis: {
      endpoint: props.redis.replicationGroup.attrPrimaryEndPointAddress,
      port: props.redis.replicationGroup.attrPrimaryEndPointPort,
      authToken: props.redis.authToken,
    },
  });
  service.addStackDependency(cluster, "the service runs on the cluster's capacity provider");
  service.addStackDependency(repository, "the service's image is in the repository");
  return { repository, cluster, service };
}

export { capacityProviderName };
