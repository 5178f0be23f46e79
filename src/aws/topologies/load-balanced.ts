import { derive } from "../../stack/index.ts";
import { crossRegionRedis } from "../../stack/cross-region-redis.ts";
import { grantGlobalDatastoreFailover, type StayupRedis } from "../database/database.ts";
import { DnsFailoverStack } from "../dns-failover/dns-failover.ts";
import { ROUTE53_METRICS_REGION, rendersDnsFailover } from "../naming.ts";
import { NetworkStack } from "../network/network.ts";
import type { RedisConnection } from "../web/launch-template.ts";
import { WebStack } from "../web/web-tier.ts";
import type { AwsTopologyBuilder } from "./builder.ts";
import { addPrimaryDatabase, databaseIn, deployAfter, onPrimaryNetwork } from "./wiring.ts";

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
 * Tutorial 07: ElastiCache, then an ALB in front of the web Auto Scaling group; with a secondary
 * region (seed 002) the same there at its standby capacity, and Route 53 failover between them.
 */
export const buildLoadBalanced: AwsTopologyBuilder = (context) => {
  const { app, stack, bundleDir, ids, common, networkStack, result } = context;
  const { network } = networkStack;
  // A cross-region replica: the Global Datastore over the primary's group, its id read by the
  // secondary region's stack and the failover stack (CDK's cross-region references).
  const replica = crossRegionRedis(stack) === "replica";
  result.database = addPrimaryDatabase(
    context,
    replica ? { globalDatastore: { role: "primary" }, crossRegionReferences: true } : {},
  );
  const web = new WebStack(app, ids.web, {
    ...onPrimaryNetwork(context, "ALB and the web Auto Scaling group"),
    loadBalancerSecurityGroup: network.loadBalancerSecurityGroup,
    webSecurityGroup: network.webSecurityGroup,
    redis: elasticacheConnection(result.database.redis),
    bundleDir,
    role: "primary",
  });
  result.web = deployAfter(result.ordered, web, result.database);

  const secondary = stack.regions.secondary;
  if (!secondary) return;
  const secondaryEnv = { region: secondary.name, account: process.env.CDK_DEFAULT_ACCOUNT };
  const globalDatastore = result.database.redis.globalDatastore;
  const secondaryCommon = { ...common, env: secondaryEnv };
  const secondaryNetwork = new NetworkStack(app, ids.secondaryNetwork, {
    ...secondaryCommon,
    availabilityZones: secondary.availabilityZones,
    description: `stayup ${stack.environment} secondary region: VPC over ${secondary.availabilityZones.length} AZs`,
  });
  result.ordered.push(secondaryNetwork);
  const secondaryDatabase = deployAfter(
    result.ordered,
    databaseIn(app, ids.secondaryDatabase, secondaryNetwork, {
      ...secondaryCommon,
      description: `stayup ${stack.environment} secondary region: ElastiCache Redis`,
      ...(globalDatastore
        ? {
            globalDatastore: { role: "secondary", id: globalDatastore.attrGlobalReplicationGroupId },
            crossRegionReferences: true,
          }
        : {}),
    }),
    secondaryNetwork,
  );
  const secondaryWeb = new WebStack(app, ids.secondaryWeb, {
    ...secondaryCommon,
    description: `stayup ${stack.environment} secondary region: ALB and the web group at ${secondary.standby.mode} standby`,
    vpc: secondaryNetwork.network.vpc,
    loadBalancerSecurityGroup: secondaryNetwork.network.loadBalancerSecurityGroup,
    webSecurityGroup: secondaryNetwork.network.webSecurityGroup,
    redis: elasticacheConnection(secondaryDatabase.redis),
    bundleDir,
    // Starts at min (a warm standby must not scale in below it); the desired capacity is left to
    // the failover/failback Lambdas, so a deploy during a failover cannot undo it.
    capacity: { min: derive(stack).secondaryStandby.min, max: derive(stack).secondaryStandby.max },
    role: "secondary",
  });
  deployAfter(result.ordered, secondaryWeb, secondaryDatabase);
  Object.assign(result, { secondaryNetwork, secondaryDatabase, secondaryWeb });

  if (rendersDnsFailover(stack)) {
    const dnsFailover = new DnsFailoverStack(app, ids.dnsFailover, {
      ...common,
      env: { region: ROUTE53_METRICS_REGION, account: process.env.CDK_DEFAULT_ACCOUNT },
      description: `stayup ${stack.environment}: Route 53 failover for ${stack.dns?.name}, its alarms and the failover/failback Lambdas`,
      ...(globalDatastore ? { crossRegionReferences: true } : {}),
    });
    if (globalDatastore) {
      grantGlobalDatastoreFailover(dnsFailover.failover.functions, {
        id: globalDatastore.attrGlobalReplicationGroupId,
        primary: { region: stack.regions.primary.name, group: result.database.redis.replicationGroup.ref },
        secondary: { region: secondary.name, group: secondaryDatabase.redis.replicationGroup.ref },
      });
    }
    // Order only (no references): the health checks probe the names the web stacks publish.
    dnsFailover.addStackDependency(result.web, "its health check probes the primary's name");
    dnsFailover.addStackDependency(secondaryWeb, "its health check probes the secondary's name");
    result.dnsFailover = dnsFailover;
    result.ordered.push(dnsFailover);
  }
};
