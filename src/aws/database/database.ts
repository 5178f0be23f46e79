import { RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elasticache from "aws-cdk-lib/aws-elasticache";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import type { ResolvedStack } from "../../stack/index.ts";
import { crossRegionRedis, globalDatastoreNames } from "../../stack/cross-region-redis.ts";
import { redisNodeCount } from "../../stack/redis-durability.ts";
import {
  AWS_TIMING_ASSUMPTIONS,
  FAILBACK_LAMBDA_TIMEOUT_SECONDS,
} from "../../stack/region-failover-timing.ts";
import { resourcePrefix } from "../naming.ts";

export interface StayupRedisProps {
  stack: ResolvedStack;
  vpc: ec2.IVpc;
  securityGroup: ec2.ISecurityGroup;
  /**
   * With `redis.crossRegion: "replica"`: `primary` creates the Global Datastore over this region's
   * group; `secondary` joins the group to it (the datastore's id, from the primary region's stack).
   */
  globalDatastore?: { role: "primary" } | { role: "secondary"; id: string };
}

/**
 * ElastiCache Redis as a replication group in the isolated subnets: encrypted in transit and at
 * rest, an AUTH token generated in Secrets Manager; with Multi-AZ, a replica in each other AZ and
 * automatic failover (the seed ran a single node).
 */
export class StayupRedis extends Construct {
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  readonly authToken: secretsmanager.Secret;
  /** The ElastiCache Global Datastore over this (primary) region's group, with a cross-region replica. */
  readonly globalDatastore?: elasticache.CfnGlobalReplicationGroup;

  constructor(scope: Construct, id: string, props: StayupRedisProps) {
    super(scope, id);
    const { stack } = props;
    const prefix = resourcePrefix(stack);
    const removalPolicy = stack.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    // No fixed name: prod keeps the secret when its stack is deleted, and a fixed name would make
    // the next create fail on the name it holds. (CloudFormation deletes a secret it does delete
    // without a recovery window, so dev would not need this; one rule for both is simpler.)
    this.authToken = new secretsmanager.Secret(this, "AuthToken", {
      description: `AUTH token of ${prefix} Redis`,
      // ElastiCache accepts 16-128 printable characters; letters and digits keep it URL-safe.
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy,
    });
    const subnetGroup = new elasticache.CfnSubnetGroup(this, "SubnetGroup", {
      cacheSubnetGroupName: `${prefix}-redis`,
      description: `${prefix} Redis: isolated subnets`,
      subnetIds: props.vpc.isolatedSubnets.map((s) => s.subnetId),
    });
    const multiAz = stack.redis.multiAz;
    this.replicationGroup = new elasticache.CfnReplicationGroup(this, "ReplicationGroup", {
      replicationGroupId: `${prefix}-redis`,
      replicationGroupDescription: `${prefix} page counter`,
      engine: "redis",
      engineVersion: "7.1",
      cacheNodeType: stack.redis.nodeType,
      // One node per AZ (a replica in each other AZ), as locally: the loss of one node or AZ leaves
      // a replica to take the instances' WAIT, so writes keep being acknowledged.
      numCacheClusters: redisNodeCount(stack),
      multiAzEnabled: multiAz,
      automaticFailoverEnabled: multiAz,
      transitEncryptionEnabled: true,
      atRestEncryptionEnabled: true,
      authToken: this.authToken.secretValue.unsafeUnwrap(),
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [props.securityGroup.securityGroupId],
      port: 6379,
      snapshotRetentionLimit: stack.deletionProtection ? 7 : 1,
      autoMinorVersionUpgrade: true,
      // A secondary member of the Global Datastore: created as its read-only copy (the node type
      // must be the datastore's, which the description's single node type guarantees).
      ...(props.globalDatastore?.role === "secondary"
        ? { globalReplicationGroupId: props.globalDatastore.id }
        : {}),
    });
    this.replicationGroup.applyRemovalPolicy(
      stack.deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
    );
    if (props.globalDatastore?.role === "primary" && crossRegionRedis(stack) === "replica") {
      // The schema refused node types a Global Datastore does not run on (M/R, large and above).
      this.globalDatastore = new elasticache.CfnGlobalReplicationGroup(this, "GlobalDatastore", {
        globalReplicationGroupIdSuffix: globalDatastoreNames(stack).suffix,
        globalReplicationGroupDescription: `${prefix} page counter across regions`,
        members: [
          {
            replicationGroupId: this.replicationGroup.ref,
            replicationGroupRegion: Stack.of(this).region,
            role: "PRIMARY",
          },
        ],
        automaticFailoverEnabled: multiAz,
      });
      this.globalDatastore.applyRemovalPolicy(
        stack.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      );
    }
  }
}

export type DatabaseStackProps = StackProps & StayupRedisProps;

export class DatabaseStack extends Stack {
  readonly redis: StayupRedis;
  constructor(scope: Construct, id: string, props: DatabaseStackProps) {
    super(scope, id, props);
    this.redis = new StayupRedis(this, "Redis", props);
  }
}

/** The Global Datastore's ARN (global resources carry no region). */
export const globalDatastoreArn = (scope: Construct, id: string) =>
  `arn:${Stack.of(scope).partition}:elasticache::${Stack.of(scope).account}:globalreplicationgroup:${id}`;

/**
 * The failover and failback Lambdas promote the Global Datastore's member in their region
 * (FailoverGlobalReplicationGroup): told which datastore and groups by their environment, allowed
 * that datastore only.
 */
export function grantGlobalDatastoreFailover(
  functions: { failover: lambda.Function; failback: lambda.Function },
  datastore: {
    id: string;
    primary: { region: string; group: string };
    secondary: { region: string; group: string };
  },
): void {
  for (const fn of [functions.failover, functions.failback]) {
    fn.addEnvironment("GLOBAL_REPLICATION_GROUP_ID", datastore.id);
    fn.addEnvironment("PRIMARY_REGION", datastore.primary.region);
    fn.addEnvironment("PRIMARY_REPLICATION_GROUP_ID", datastore.primary.group);
    fn.addEnvironment("SECONDARY_REPLICATION_GROUP_ID", datastore.secondary.group);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          "elasticache:FailoverGlobalReplicationGroup",
          "elasticache:DescribeGlobalReplicationGroups",
        ],
        resources: [globalDatastoreArn(fn, datastore.id)],
      }),
    );
  }
  // DNS answers the primary region once it can serve (its Redis following, read-only until
  // promoted): the failback waits within its run for the member to catch up, not a retry later.
  const catchUp = AWS_TIMING_ASSUMPTIONS.globalDatastoreCatchUp.seconds;
  functions.failback.addEnvironment("CATCH_UP_WAIT_SECONDS", String(catchUp));
  (functions.failback.node.defaultChild as lambda.CfnFunction).timeout = FAILBACK_LAMBDA_TIMEOUT_SECONDS;
}
