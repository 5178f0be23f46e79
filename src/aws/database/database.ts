import { RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elasticache from "aws-cdk-lib/aws-elasticache";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import type { ResolvedStack } from "../../stack/index.ts";
import { redisNodeCount } from "../../stack/redis-durability.ts";
import { resourcePrefix } from "../naming.ts";

export interface StayupRedisProps {
  stack: ResolvedStack;
  vpc: ec2.IVpc;
  securityGroup: ec2.ISecurityGroup;
}

/**
 * ElastiCache Redis as a replication group in the isolated subnets: encrypted in transit and at
 * rest, an AUTH token generated in Secrets Manager; with Multi-AZ, a replica in each other AZ and
 * automatic failover (the seed ran a single node).
 */
export class StayupRedis extends Construct {
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  readonly authToken: secretsmanager.Secret;

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
    });
    this.replicationGroup.applyRemovalPolicy(
      stack.deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
    );
  }
}

export class DatabaseStack extends Stack {
  readonly redis: StayupRedis;
  constructor(scope: Construct, id: string, props: StackProps & StayupRedisProps) {
    super(scope, id, props);
    this.redis = new StayupRedis(this, "Redis", props);
  }
}
