import type { Stack } from "aws-cdk-lib";
import type { AccessStack } from "./access/bastion.ts";
import type { DatabaseStack } from "./database/database.ts";
import type { DnsFailoverStack } from "./dns-failover/dns-failover.ts";
import type { ClusterStack } from "./ecs/cluster.ts";
import type { RepositoryStack } from "./ecs/repository.ts";
import type { ServiceStack } from "./ecs/service.ts";
import type { NetworkStack } from "./network/network.ts";
import type { SingleInstanceStack } from "./single-instance/single-instance.ts";
import type { WebStack } from "./web/web-tier.ts";

// The rendered app's stacks as a type of their own: app.ts fills it in through the topologies'
// builders, which add to it, and the compliance checks read it.

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
  /** In deployment order (network, access with a bastion, then the topology's), as in the seeds. */
  ordered: Stack[];
}
