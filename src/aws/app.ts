import { App, type Stack, Tags } from "aws-cdk-lib";
import { type ResolvedStack, standbyCapacity } from "../stack/index.ts";
import { AccessStack } from "./access/bastion.ts";
import { DatabaseStack, type StayupRedis } from "./database/database.ts";
import { DnsFailoverStack } from "./dns-failover/dns-failover.ts";
import { ROUTE53_METRICS_REGION, rendersDnsFailover, stackIds } from "./naming.ts";
import { NetworkStack } from "./network/network.ts";
import { SingleInstanceStack } from "./single-instance/single-instance.ts";
import type { RedisConnection } from "./web/launch-template.ts";
import { WebStack } from "./web/web-tier.ts";

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
  /** In deployment order (network → access → database → web), as in the seeds. */
  ordered: Stack[];
}

/** How a region's web instances reach its ElastiCache: TLS endpoint and the AUTH token's secret. */
function elasticacheConnection(redis: StayupRedis): RedisConnection {
  return {
    kind: "elasticache",
    endpoint: redis.replicationGroup.attrPrimaryEndPointAddress,
    port: redis.replicationGroup.attrPrimaryEndPointPort,
    authToken: redis.authToken,
  };
}

/**
 * Renders the stack description into CDK stacks. Every setting is read from `stack`; none is
 * repeated here. Works without credentials: the region and AZs come from the description.
 */
export function addStayupStacks(app: App, stack: ResolvedStack, bundleDir: string): StayupStacks {
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
    result.access = new AccessStack(app, ids.access, {
      ...common,
      description: `stayup ${stack.environment}: SSH bastion with a stable Elastic IP`,
      vpc: network.vpc,
      securityGroup: network.bastionSecurityGroup,
    });
    result.access.addStackDependency(networkStack, "deploys after it, as in the seeds");
    result.ordered.push(result.access);
  }

  if (stack.aws.topology === "load-balanced") {
    result.database = new DatabaseStack(app, ids.database, {
      ...common,
      description: `stayup ${stack.environment}: ElastiCache Redis`,
      vpc: network.vpc,
      securityGroup: network.redisSecurityGroup,
    });
    result.database.addStackDependency(networkStack, "deploys after it, as in the seeds");
    result.ordered.push(result.database);
    const redis = result.database.redis;
    result.web = new WebStack(app, ids.web, {
      ...common,
      description: `stayup ${stack.environment}: ALB and the web Auto Scaling group`,
      vpc: network.vpc,
      loadBalancerSecurityGroup: network.loadBalancerSecurityGroup,
      webSecurityGroup: network.webSecurityGroup,
      redis: elasticacheConnection(redis),
      bundleDir,
      role: "primary",
    });
    result.web.addStackDependency(result.database, "deploys after it, as in the seeds");
    result.ordered.push(result.web);
  } else {
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
  }

  const secondary = stack.regions.secondary;
  if (secondary && stack.aws.topology === "load-balanced") {
    const secondaryEnv = { region: secondary.name, account: process.env.CDK_DEFAULT_ACCOUNT };
    const secondaryCommon = { ...common, env: secondaryEnv };
    const secondaryNetwork = new NetworkStack(app, ids.secondaryNetwork, {
      ...secondaryCommon,
      availabilityZones: secondary.availabilityZones,
      description: `stayup ${stack.environment} secondary region: VPC over ${secondary.availabilityZones.length} AZs`,
    });
    const secondaryDatabase = new DatabaseStack(app, ids.secondaryDatabase, {
      ...secondaryCommon,
      description: `stayup ${stack.environment} secondary region: ElastiCache Redis`,
      vpc: secondaryNetwork.network.vpc,
      securityGroup: secondaryNetwork.network.redisSecurityGroup,
    });
    secondaryDatabase.addStackDependency(secondaryNetwork, "deploys after it, as in the seeds");
    const redis = secondaryDatabase.redis;
    const secondaryWeb = new WebStack(app, ids.secondaryWeb, {
      ...secondaryCommon,
      description: `stayup ${stack.environment} secondary region: ALB and the web group at ${secondary.standby.mode} standby`,
      vpc: secondaryNetwork.network.vpc,
      loadBalancerSecurityGroup: secondaryNetwork.network.loadBalancerSecurityGroup,
      webSecurityGroup: secondaryNetwork.network.webSecurityGroup,
      redis: elasticacheConnection(redis),
      bundleDir,
      // Starts at min (a warm standby must not scale in below it); the desired capacity is left to
      // the failover/failback Lambdas, so a deploy during a failover cannot undo it.
      capacity: { min: standbyCapacity(stack), max: stack.web.capacity.max },
      role: "secondary",
    });
    secondaryWeb.addStackDependency(secondaryDatabase, "deploys after it, as in the seeds");
    Object.assign(result, { secondaryNetwork, secondaryDatabase, secondaryWeb });
    result.ordered.push(secondaryNetwork, secondaryDatabase, secondaryWeb);

    if (rendersDnsFailover(stack) && result.web) {
      const dnsFailover = new DnsFailoverStack(app, ids.dnsFailover, {
        ...common,
        env: { region: ROUTE53_METRICS_REGION, account: process.env.CDK_DEFAULT_ACCOUNT },
        description: `stayup ${stack.environment}: Route 53 failover for ${stack.dns?.name}, its alarms and the failover/failback Lambdas`,
      });
      // Order only (no references): the health checks probe the names the web stacks publish.
      dnsFailover.addStackDependency(result.web, "its health check probes the primary's name");
      dnsFailover.addStackDependency(secondaryWeb, "its health check probes the secondary's name");
      result.dnsFailover = dnsFailover;
      result.ordered.push(dnsFailover);
    }
  }

  // Listener tags are newer than cfn-lint's schema; a listener needs none (its load balancer has them).
  const tagging = { excludeResourceTypes: ["AWS::ElasticLoadBalancingV2::Listener"] };
  Tags.of(app).add("Project", "stayup", tagging);
  Tags.of(app).add("stayup:stack", stack.name, tagging);
  Tags.of(app).add("stayup:environment", stack.environment, tagging);
  return result;
}
