import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  SetInstanceProtectionCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  CloudFormationClient,
  DescribeStacksCommand,
  ListStackResourcesCommand,
  UpdateTerminationProtectionCommand,
} from "@aws-sdk/client-cloudformation";
import {
  CloudWatchLogsClient,
  DeleteLogGroupCommand,
  DescribeLogGroupsCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { DescribeImagesCommand, DescribeRepositoriesCommand, ECRClient } from "@aws-sdk/client-ecr";
import {
  ElasticLoadBalancingV2Client,
  ModifyLoadBalancerAttributesCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { ListBucketsCommand, ListObjectVersionsCommand, S3Client } from "@aws-sdk/client-s3";
import { DescribeSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { type Topology, topologies } from "../stack/index.ts";
import { type Price, type PriceKey, priceTable } from "./cost/prices.ts";

/**
 * What `stayup destroy` does besides running `cdk destroy`: lifts the protections it must (only
 * when told to), and afterwards says what is left in the account and what it costs per month.
 */

export interface TemplateLike {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; DeletionPolicy?: string }>;
}

export interface DeployedTemplate {
  stackName: string;
  region: string;
  template: TemplateLike;
}

export interface RetainedResource {
  stackName: string;
  region: string;
  type: string;
  /** The physical name when the template fixes it, else the stack and logical id it had. */
  name: string;
  why: string;
  /**
   * Where the template names it not: the start of the name CloudFormation generates,
   * `<stack>-<logical id>-<random suffix>` (S3 lower-cases it).
   */
  generatedNamePrefix?: string;
  /** false: moto_server does not model it (a snapshot taken on deletion, a log group a service creates). */
  inMoto?: boolean;
}

const namedBy: Record<string, string> = {
  "AWS::Logs::LogGroup": "LogGroupName",
  "AWS::S3::Bucket": "BucketName",
  "AWS::ECR::Repository": "RepositoryName",
  "AWS::SecretsManager::Secret": "Name",
};

/**
 * What the stacks' deletion leaves behind, read from their templates: resources whose
 * DeletionPolicy is Retain (CloudFormation "keeps the resource without deleting it"), snapshots
 * taken on deletion (DeletionPolicy Snapshot), and log groups AWS services create outside
 * CloudFormation (Lambda's `/aws/lambda/<function>` without a LoggingConfig log group, ECS
 * Container Insights' `/aws/ecs/containerinsights/<cluster>/performance`).
 * https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
 */
export function retainedAfterDestroy(stacks: DeployedTemplate[]): RetainedResource[] {
  const retained: RetainedResource[] = [];
  for (const { stackName, region, template } of stacks) {
    for (const [logicalId, r] of Object.entries(template.Resources)) {
      const props = r.Properties ?? {};
      const fixed = namedBy[r.Type] ? props[namedBy[r.Type] as string] : undefined;
      const name = typeof fixed === "string" ? fixed : `${stackName}/${logicalId}`;
      const base = {
        stackName,
        region,
        type: r.Type,
        name,
        ...(typeof fixed === "string" ? {} : { generatedNamePrefix: `${stackName}-${logicalId}` }),
      };
      if (r.DeletionPolicy === "Retain" || r.DeletionPolicy === "RetainExceptOnCreate") {
        retained.push({
          ...base,
          why: "DeletionPolicy Retain",
          // moto has no Secrets Manager secret in CloudFormation (test/moto.ts NOT_IN_MOTO_COMMON).
          inMoto: r.Type !== "AWS::SecretsManager::Secret",
        });
      } else if (r.DeletionPolicy === "Snapshot") {
        retained.push({
          ...base,
          type: `${r.Type} snapshot`,
          why: "DeletionPolicy Snapshot: a final snapshot",
          inMoto: false,
        });
      }
      if (r.Type === "AWS::Lambda::Function" && !(props.LoggingConfig as { LogGroup?: unknown })?.LogGroup) {
        const fn = typeof props.FunctionName === "string" ? props.FunctionName : `${stackName}-${logicalId}*`;
        retained.push({
          stackName,
          region,
          type: "AWS::Logs::LogGroup",
          name: `/aws/lambda/${fn}`,
          why: "created by Lambda at its first run, outside CloudFormation",
          inMoto: false,
        });
      }
      const insights = (props.ClusterSettings as { Name: string; Value: string }[] | undefined)?.some(
        (s) => s.Name === "containerInsights" && s.Value !== "disabled",
      );
      if (r.Type === "AWS::ECS::Cluster" && insights && typeof props.ClusterName === "string") {
        retained.push({
          stackName,
          region,
          type: "AWS::Logs::LogGroup",
          name: `/aws/ecs/containerinsights/${props.ClusterName}/performance`,
          why: "created by Container Insights, outside CloudFormation",
          inMoto: false,
        });
      }
    }
  }
  return retained;
}

/** A leftover that exists, with its size where the API tells it. */
export interface Remaining extends RetainedResource {
  sizeBytes?: number;
  /** The name retainedAfterDestroy listed it under, where the one found differs (a generated name). */
  listedAs?: string;
}

type ClientConfig = (region: string) => Record<string, unknown> & { region: string };

const notFound = (error: unknown) =>
  /NotFound|not found|does not exist|NoSuch/i.test(`${(error as Error).name} ${(error as Error).message}`);

/** Which of `retained` still exist in the account (and their size), asked through the SDK. */
export async function findRemaining(
  retained: RetainedResource[],
  config: ClientConfig = (region) => ({ region }),
): Promise<Remaining[]> {
  const found: Remaining[] = [];
  const seen = new Set<string>();
  for (const r of retained) {
    const key = `${r.region} ${r.type} ${r.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const c = config(r.region);
    try {
      if (r.type === "AWS::Logs::LogGroup") {
        // An unnamed log group is named <stack>-<logical id>-<suffix> by CloudFormation.
        const prefix = r.generatedNamePrefix ? `${r.generatedNamePrefix}-` : r.name.replace(/\*$/, "");
        const groups =
          (
            await new CloudWatchLogsClient(c).send(
              new DescribeLogGroupsCommand({ logGroupNamePrefix: prefix }),
            )
          ).logGroups ?? [];
        const matches = (name: string) =>
          name === r.name ||
          r.name.endsWith("*") ||
          Boolean(r.generatedNamePrefix && name.startsWith(prefix));
        for (const g of groups.filter((x) => matches(x.logGroupName ?? ""))) {
          found.push({
            ...r,
            name: g.logGroupName ?? r.name,
            listedAs: r.name,
            sizeBytes: g.storedBytes ?? 0,
          });
        }
      } else if (r.type === "AWS::ECR::Repository") {
        const ecr = new ECRClient(c);
        await ecr.send(new DescribeRepositoriesCommand({ repositoryNames: [r.name] }));
        const images =
          (await ecr.send(new DescribeImagesCommand({ repositoryName: r.name }))).imageDetails ?? [];
        found.push({ ...r, sizeBytes: images.reduce((sum, i) => sum + (i.imageSizeInBytes ?? 0), 0) });
      } else if (r.type === "AWS::S3::Bucket") {
        const s3 = new S3Client({ ...c, forcePathStyle: true });
        // An unnamed bucket is named <stack>-<logical id>-<suffix> by CloudFormation, lower-cased.
        const prefix = r.generatedNamePrefix?.toLowerCase().slice(0, 40);
        const buckets = ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).filter((b) =>
          prefix ? b.Name?.startsWith(prefix) : b.Name === r.name,
        );
        for (const b of buckets) {
          const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: b.Name }));
          const size = (versions.Versions ?? []).reduce((sum, v) => sum + (v.Size ?? 0), 0);
          found.push({ ...r, name: b.Name ?? r.name, listedAs: r.name, sizeBytes: size });
        }
      } else if (r.type === "AWS::SecretsManager::Secret") {
        await new SecretsManagerClient(c).send(new DescribeSecretCommand({ SecretId: r.name }));
        found.push(r);
      } else {
        // Snapshots: named by AWS at deletion; listed as retained, sized by their source.
        found.push(r);
      }
    } catch (error) {
      if (!notFound(error)) throw error;
    }
  }
  return found;
}

const GB = 1024 ** 3;

export interface PricedLeftover extends Remaining {
  /** USD per month; undefined when its size is unknown (a snapshot's is known only to AWS). */
  monthlyUsd?: number;
  basis: string;
}

/** The storage a leftover of each type is billed for, in the cost module's price table. */
const storagePrice: Record<string, PriceKey> = {
  "AWS::Logs::LogGroup": "logs:storage-gb-month",
  "AWS::ECR::Repository": "ecr:gb-month",
  "AWS::S3::Bucket": "s3:gb-month",
  "AWS::EC2::Volume snapshot": "ebs:snapshot-gb-month",
  "AWS::ElastiCache::ReplicationGroup snapshot": "elasticache:snapshot-gb-month",
};

/** The region's price, else us-east-1's (said so in the basis): a leftover is never priced at 0. */
function leftoverPrice(region: string, key: PriceKey): { price: Price; source: string } | undefined {
  const own = priceTable[region]?.[key];
  if (own) return { price: own, source: own.source };
  const fallback = priceTable["us-east-1"]?.[key];
  return fallback
    ? { price: fallback, source: `us-east-1's price, ${region} has none: ${fallback.source}` }
    : undefined;
}

/** Prices each leftover from the cost module's price table (`src/aws/cost/prices.ts`). */
export function priceLeftovers(remaining: Remaining[]): PricedLeftover[] {
  return remaining.map((r) => {
    if (r.type === "AWS::SecretsManager::Secret") {
      const found = leftoverPrice(r.region, "secretsmanager:secret-month");
      return { ...r, monthlyUsd: found?.price.usd, basis: `per secret (${found?.source ?? "unpriced"})` };
    }
    const key = storagePrice[r.type];
    const found = key ? leftoverPrice(r.region, key) : undefined;
    if (!found) return { ...r, basis: "unpriced" };
    const { price, source } = found;
    if (r.sizeBytes === undefined) return { ...r, basis: `$${price.usd}/GB-month, size unknown (${source})` };
    const gb = r.sizeBytes / GB;
    return {
      ...r,
      monthlyUsd: gb * price.usd,
      basis: `${gb.toFixed(3)} GB at $${price.usd}/GB-month (${source})`,
    };
  });
}

/** The lines `stayup destroy` ends with. */
export function formatLeftovers(leftovers: PricedLeftover[]): string[] {
  if (leftovers.length === 0) return ["nothing is left in the account: nothing keeps costing"];
  const total = leftovers.reduce((sum, l) => sum + (l.monthlyUsd ?? 0), 0);
  const unknown = leftovers.filter((l) => l.monthlyUsd === undefined).length;
  return [
    `left in the account after destroy (${leftovers.length}), about $${total.toFixed(2)}/month${unknown ? ` plus ${unknown} of unknown size` : ""}:`,
    ...leftovers.map(
      (l) =>
        `  ${l.type} ${l.name} (${l.region}, ${l.why}): ${l.monthlyUsd === undefined ? "?" : `$${l.monthlyUsd.toFixed(2)}`}/month, ${l.basis}`,
    ),
  ];
}

/**
 * Dev leaves nothing billable: the log groups services created outside CloudFormation are deleted
 * once their stacks are gone (CloudFormation cannot, it never owned them).
 */
export async function deleteOutsideLogGroups(
  retained: RetainedResource[],
  config: ClientConfig = (region) => ({ region }),
): Promise<string[]> {
  const deleted: string[] = [];
  const outside = retained.filter(
    (r) => r.type === "AWS::Logs::LogGroup" && r.why.includes("outside CloudFormation"),
  );
  for (const r of await findRemaining(outside, config)) {
    await new CloudWatchLogsClient(config(r.region)).send(
      new DeleteLogGroupCommand({ logGroupName: r.name }),
    );
    deleted.push(r.name);
  }
  return deleted;
}

/** What lifting deletion protection changed, for the log. */
export interface ProtectionLifted {
  terminationProtection: string[];
  loadBalancers: string[];
  groups: { name: string; instances: number }[];
}

/**
 * With `--force-delete-protected`: turns off what would make CloudFormation refuse or hang. Stack
 * termination protection (DeleteStack fails while it is on), the load balancers' deletion
 * protection (their deletion fails), and the Auto Scaling groups' scale-in protection (deleting a
 * group waits for protected instances, which nothing will unprotect once the stacks go).
 * https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html
 * https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-instance-protection.html
 */
export async function liftDeletionProtection(
  stacks: { stackName: string; region: string }[],
  config: ClientConfig = (region) => ({ region }),
  log: (line: string) => void = () => undefined,
): Promise<ProtectionLifted> {
  const lifted: ProtectionLifted = { terminationProtection: [], loadBalancers: [], groups: [] };
  for (const { stackName, region } of stacks) {
    const cfn = new CloudFormationClient(config(region));
    let stack;
    try {
      stack = (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
    } catch (error) {
      if (notFound(error)) continue;
      throw error;
    }
    if (!stack) continue;
    if (stack.EnableTerminationProtection) {
      await cfn.send(
        new UpdateTerminationProtectionCommand({ StackName: stackName, EnableTerminationProtection: false }),
      );
      lifted.terminationProtection.push(stackName);
      log(`${stackName}: termination protection off`);
    }
    const resources =
      (await cfn.send(new ListStackResourcesCommand({ StackName: stackName }))).StackResourceSummaries ?? [];
    for (const r of resources) {
      if (r.ResourceType === "AWS::ElasticLoadBalancingV2::LoadBalancer" && r.PhysicalResourceId) {
        await new ElasticLoadBalancingV2Client(config(region)).send(
          new ModifyLoadBalancerAttributesCommand({
            LoadBalancerArn: r.PhysicalResourceId,
            Attributes: [{ Key: "deletion_protection.enabled", Value: "false" }],
          }),
        );
        lifted.loadBalancers.push(r.PhysicalResourceId);
        log(`${stackName}: load balancer deletion protection off`);
      }
      if (r.ResourceType === "AWS::AutoScaling::AutoScalingGroup" && r.PhysicalResourceId) {
        const instances = await unprotectGroup(new AutoScalingClient(config(region)), r.PhysicalResourceId);
        lifted.groups.push({ name: r.PhysicalResourceId, instances });
        log(
          `${stackName}: group ${r.PhysicalResourceId}, scale-in protection cleared on ${instances} instance(s)`,
        );
      }
    }
  }
  return lifted;
}

/** New instances unprotected, and each protected one cleared (at most 50 per call). */
export async function unprotectGroup(autoScaling: AutoScalingClient, groupName: string): Promise<number> {
  const group = (
    await autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }))
  ).AutoScalingGroups?.[0];
  if (!group) return 0;
  await autoScaling.send(
    new UpdateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName,
      NewInstancesProtectedFromScaleIn: false,
    }),
  );
  const ids = (group.Instances ?? [])
    .filter((i) => i.ProtectedFromScaleIn)
    .map((i) => i.InstanceId)
    .filter((id): id is string => Boolean(id));
  for (let i = 0; i < ids.length; i += 50) {
    await autoScaling.send(
      new SetInstanceProtectionCommand({
        AutoScalingGroupName: groupName,
        InstanceIds: ids.slice(i, i + 50),
        ProtectedFromScaleIn: false,
      }),
    );
  }
  return ids.length;
}

/** The stacks only one topology has (network, access and database are shared by name). */
export const topologyStackKinds: Record<Topology, string[]> = {
  "load-balanced": ["web", "secondary-network", "secondary-database", "secondary-web", "dns-failover"],
  "single-instance": ["single-instance"],
  ecs: ["repository", "cluster", "service"],
};

/**
 * Stacks of the other topologies that exist in the account: `destroy --topology X` removes X's
 * and says these remain (and keeps the shared stacks they import from).
 */
export async function otherTopologyStacks(
  prefix: string,
  topology: Topology,
  regions: string[],
  config: ClientConfig = (region) => ({ region }),
): Promise<{ topology: Topology; stackName: string; region: string }[]> {
  const found: { topology: Topology; stackName: string; region: string }[] = [];
  for (const other of topologies.filter((t) => t !== topology)) {
    for (const kind of topologyStackKinds[other]) {
      for (const region of regions) {
        const stackName = `${prefix}-${kind}`;
        try {
          const s = (
            await new CloudFormationClient(config(region)).send(
              new DescribeStacksCommand({ StackName: stackName }),
            )
          ).Stacks?.[0];
          if (s && s.StackStatus !== "DELETE_COMPLETE") found.push({ topology: other, stackName, region });
        } catch (error) {
          if (!notFound(error)) throw error;
        }
      }
    }
  }
  return found;
}

/** Whether a stack exists (and is not deleted) in a region. */
export async function stackExists(
  stackName: string,
  region: string,
  config: ClientConfig = (r) => ({ region: r }),
): Promise<boolean> {
  try {
    const s = (
      await new CloudFormationClient(config(region)).send(new DescribeStacksCommand({ StackName: stackName }))
    ).Stacks?.[0];
    return Boolean(s && s.StackStatus !== "DELETE_COMPLETE");
  } catch (error) {
    if (notFound(error)) return false;
    throw error;
  }
}
