import { readFileSync } from "node:fs";
import type {
  IPolicyValidationContextBeta1,
  IPolicyValidationPluginBeta1,
  PolicyValidationPluginReportBeta1,
  PolicyViolationBeta1,
} from "aws-cdk-lib";

/**
 * stayup's lifecycle rules: what AWS does on the second deploy, on destroy and the deploy after it,
 * and in a new account, encoded over synthesized CloudFormation templates (issue 22). Each rule
 * cites the AWS documentation it encodes; docs/aws-lifecycle.md lists them with their tests.
 */

type Props = Record<string, unknown>;
export interface CfnResource {
  Type: string;
  Properties?: Props;
  DeletionPolicy?: string;
  UpdatePolicy?: Props;
}
export interface CfnTemplate {
  Resources?: Record<string, CfnResource>;
  Parameters?: Record<string, { Type?: string; Default?: unknown }>;
  Outputs?: Record<string, { Value?: unknown; Export?: { Name?: unknown } }>;
}

/** One synthesized stack: its name, region and template. */
export interface CheckedTemplate {
  stack: string;
  region: string;
  template: CfnTemplate;
  /** Where it was read from (reports name it). */
  templatePath?: string;
}

export interface LifecycleViolation {
  rule: string;
  stack: string;
  resource: string;
  message: string;
}

export interface LifecycleRule {
  id: string;
  /** What goes wrong, in one line. */
  title: string;
  /** The AWS documentation the rule encodes. */
  sources: string[];
  /** What to do instead. */
  fix: string;
  /** Over every template of one synthesis (one environment and topology). */
  check(templates: CheckedTemplate[]): LifecycleViolation[];
}

/**
 * The property holding a resource's physical name, by type: with it set, the name is fixed; without
 * it, CloudFormation makes a unique one (stack name, logical id, random suffix).
 */
export const physicalNameProperty: Record<string, string> = {
  "AWS::Logs::LogGroup": "LogGroupName",
  "AWS::SecretsManager::Secret": "Name",
  "AWS::ECR::Repository": "RepositoryName",
  "AWS::S3::Bucket": "BucketName",
  "AWS::ElasticLoadBalancingV2::LoadBalancer": "Name",
  "AWS::ElasticLoadBalancingV2::TargetGroup": "Name",
  "AWS::AutoScaling::AutoScalingGroup": "AutoScalingGroupName",
  "AWS::EC2::LaunchTemplate": "LaunchTemplateName",
  "AWS::SNS::Topic": "TopicName",
  "AWS::SSM::Parameter": "Name",
  "AWS::ECS::Cluster": "ClusterName",
  "AWS::ECS::Service": "ServiceName",
  "AWS::ECS::CapacityProvider": "Name",
  "AWS::Lambda::Function": "FunctionName",
  "AWS::CloudWatch::Alarm": "AlarmName",
  "AWS::ElastiCache::ReplicationGroup": "ReplicationGroupId",
  "AWS::ElastiCache::SubnetGroup": "CacheSubnetGroupName",
  "AWS::IAM::Role": "RoleName",
  "AWS::DynamoDB::Table": "TableName",
  "AWS::SQS::Queue": "QueueName",
  "AWS::KMS::Alias": "AliasName",
};

const resourcesOf = (t: CheckedTemplate) => Object.entries(t.template.Resources ?? {});
const refTo = (value: unknown): string | undefined =>
  typeof value === "object" && value !== null && typeof (value as Props).Ref === "string"
    ? ((value as Props).Ref as string)
    : undefined;
/** Every logical id a value refers to (Ref, GetAtt), however deep. */
function referencedIds(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) referencedIds(v, into);
  else if (typeof value === "object" && value !== null) {
    const o = value as Props;
    if (typeof o.Ref === "string") into.add(o.Ref);
    const getAtt = o["Fn::GetAtt"];
    if (Array.isArray(getAtt) && typeof getAtt[0] === "string") into.add(getAtt[0]);
    for (const v of Object.values(o)) referencedIds(v, into);
  }
  return into;
}
/** Every export name a value imports, however deep (literal names only). */
function importedNames(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) importedNames(v, into);
  else if (typeof value === "object" && value !== null) {
    const o = value as Props;
    if (typeof o["Fn::ImportValue"] === "string") into.add(o["Fn::ImportValue"] as string);
    for (const v of Object.values(o)) importedNames(v, into);
  }
  return into;
}

/** DeletionPolicy values that leave the resource behind when its stack is deleted. */
const KEPT = new Set(["Retain", "RetainExceptOnCreate"]);

export const retainedFixedName: LifecycleRule = {
  id: "retained-resource-with-fixed-name",
  title:
    "a resource kept when its stack is deleted keeps its name: with a fixed name, the next create of the stack fails with 'already exists'",
  sources: [
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-name.html",
  ],
  fix: "leave the name to CloudFormation where the resource is kept (nameUnlessRetained), or delete it with the stack",
  check: (templates) =>
    templates.flatMap((t) =>
      resourcesOf(t).flatMap(([id, r]) => {
        const nameProperty = physicalNameProperty[r.Type];
        const name = nameProperty ? r.Properties?.[nameProperty] : undefined;
        if (!KEPT.has(r.DeletionPolicy ?? "") || name === undefined) return [];
        return [
          {
            rule: retainedFixedName.id,
            stack: t.stack,
            resource: id,
            message: `${r.Type} ${JSON.stringify(name)} has DeletionPolicy ${r.DeletionPolicy} and a fixed ${nameProperty}`,
          },
        ];
      }),
    ),
};

export const refreshWaitsOnInstances: LifecycleRule = {
  id: "instance-refresh-waits-on-protected-or-standby-instances",
  title:
    "an instance refresh waits (AWS's default) an hour for protected or standby instances, then fails: the stack update rolls back",
  sources: [
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/understand-instance-refresh-default-values.html",
    "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html",
  ],
  fix: "set the refresh's ScaleInProtectedInstances (Refresh or Ignore) and StandbyInstances (Terminate or Ignore)",
  check: (templates) =>
    templates.flatMap((t) =>
      resourcesOf(t).flatMap(([id, r]) => {
        if (r.Type !== "AWS::AutoScaling::AutoScalingGroup") return [];
        const refresh = r.UpdatePolicy?.AutoScalingInstanceRefresh as Props | undefined;
        if (!refresh) return [];
        const preferences = (refresh.Preferences ?? {}) as Props;
        const waits = [
          ["ScaleInProtectedInstances", preferences.ScaleInProtectedInstances],
          ["StandbyInstances", preferences.StandbyInstances],
        ].filter(([, v]) => v === undefined || v === "Wait");
        return waits.map(([name, v]) => ({
          rule: refreshWaitsOnInstances.id,
          stack: t.stack,
          resource: id,
          message: `instance refresh ${name} is ${v === undefined ? "unset (Wait)" : "Wait"}`,
        }));
      }),
    ),
};

export const reservedConcurrency: LifecycleRule = {
  id: "reserved-lambda-concurrency",
  title:
    "reserving concurrency fails where the account's unreserved concurrency would drop below its minimum (new accounts have none to spare)",
  sources: [
    "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html",
    "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html",
  ],
  fix: "leave ReservedConcurrentExecutions unset (make the function safe to run concurrently)",
  check: (templates) =>
    templates.flatMap((t) =>
      resourcesOf(t).flatMap(([id, r]) =>
        r.Type === "AWS::Lambda::Function" && r.Properties?.ReservedConcurrentExecutions !== undefined
          ? [
              {
                rule: reservedConcurrency.id,
                stack: t.stack,
                resource: id,
                message: `ReservedConcurrentExecutions ${JSON.stringify(r.Properties.ReservedConcurrentExecutions)}`,
              },
            ]
          : [],
      ),
    ),
};

/**
 * A NAT gateway is used when some resource sits in a subnet whose route table sends traffic to it:
 * a resource of the same template that refers to the subnet, or one of another template that
 * imports the export whose value is the subnet.
 */
export const unusedNatGateway: LifecycleRule = {
  id: "nat-gateway-without-private-subnet-in-use",
  title:
    "a NAT gateway no resource routes through costs by the hour and holds an Elastic IP (5 per region by default)",
  sources: [
    "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-nat-gateway.html",
    "https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html",
  ],
  fix: "create NAT gateways (and private subnets with egress) only where something runs in those subnets",
  check: (templates) => {
    const imported = new Set<string>();
    for (const t of templates) for (const [, r] of resourcesOf(t)) importedNames(r.Properties, imported);
    return templates.flatMap((t) => {
      const resources = t.template.Resources ?? {};
      const nats = Object.entries(resources).filter(([, r]) => r.Type === "AWS::EC2::NatGateway");
      if (nats.length === 0) return [];
      // Subnets that are only part of the network's plumbing do not count as a use.
      const plumbing = new Set([
        "AWS::EC2::Route",
        "AWS::EC2::RouteTable",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::Subnet",
        "AWS::EC2::FlowLog",
      ]);
      const exportedSubnets = new Map<string, string>();
      for (const o of Object.values(t.template.Outputs ?? {})) {
        const subnet = refTo(o.Value);
        if (subnet && typeof o.Export?.Name === "string") exportedSubnets.set(o.Export.Name, subnet);
      }
      const usedSubnets = new Set<string>();
      for (const [, r] of Object.entries(resources))
        if (!plumbing.has(r.Type)) for (const id of referencedIds(r.Properties)) usedSubnets.add(id);
      for (const [name, subnet] of exportedSubnets) if (imported.has(name)) usedSubnets.add(subnet);
      return nats.flatMap(([natId]) => {
        const tables = Object.values(resources)
          .filter((r) => r.Type === "AWS::EC2::Route" && refTo(r.Properties?.NatGatewayId) === natId)
          .map((r) => refTo(r.Properties?.RouteTableId));
        const subnets = Object.values(resources)
          .filter(
            (r) =>
              r.Type === "AWS::EC2::SubnetRouteTableAssociation" &&
              tables.includes(refTo(r.Properties?.RouteTableId)),
          )
          .map((r) => refTo(r.Properties?.SubnetId))
          .filter((s): s is string => Boolean(s));
        if (subnets.some((s) => usedSubnets.has(s))) return [];
        return [
          {
            rule: unusedNatGateway.id,
            stack: t.stack,
            resource: natId,
            message:
              subnets.length === 0
                ? "no route table sends traffic to it"
                : `nothing runs in the subnets routed through it (${subnets.join(", ")})`,
          },
        ];
      });
    });
  },
};

/** How an AMI that CloudFormation reads from SSM shows in a template. */
function amiReadAtDeploy(imageId: unknown, parameters: CfnTemplate["Parameters"]): string | undefined {
  const ref = refTo(imageId);
  const type = ref ? parameters?.[ref]?.Type : undefined;
  if (ref && type?.startsWith("AWS::SSM::Parameter::Value"))
    return `parameter ${ref} (${type}, ${String(parameters?.[ref]?.Default)})`;
  const text = JSON.stringify(imageId ?? "");
  if (/\{\{resolve:ssm/.test(text)) return `dynamic reference ${text}`;
  if (/^"resolve:ssm:/.test(text)) return `resolved at launch: ${text}`;
  return undefined;
}

export const amiChangesEveryDeploy: LifecycleRule = {
  id: "ami-read-from-ssm-on-every-deploy",
  title:
    "an AMI read from an SSM parameter is read again on every stack update: a newer AMI published by AWS replaces every instance unasked",
  sources: [
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html#aws-ssm-parameter-types",
    "https://docs.aws.amazon.com/cdk/v2/guide/context.html",
  ],
  fix: "pin the AMI at synthesis (pinnedMachineImage: CDK's SSM lookup cached in cdk.context.json)",
  check: (templates) =>
    templates.flatMap((t) =>
      resourcesOf(t).flatMap(([id, r]) => {
        const imageId =
          r.Type === "AWS::EC2::LaunchTemplate"
            ? (r.Properties?.LaunchTemplateData as Props | undefined)?.ImageId
            : r.Type === "AWS::EC2::Instance"
              ? r.Properties?.ImageId
              : undefined;
        const how = amiReadAtDeploy(imageId, t.template.Parameters);
        return how
          ? [{ rule: amiChangesEveryDeploy.id, stack: t.stack, resource: id, message: `ImageId is ${how}` }]
          : [];
      }),
    ),
};

interface EcrRule {
  rulePriority: number;
  selection: { tagStatus?: string; tagPrefixList?: string[]; countType?: string };
}

/**
 * ECR expires by push order, and failed deploys push too: a count rule on the pushed tags can
 * expire the image the service runs after enough of them. An image a higher-priority rule selects
 * by its tags cannot be expired by a lower one, so a count rule is safe only below a rule that
 * selects the deployed images by a tag of their own.
 */
export const ecrCountCanExpireRunningImage: LifecycleRule = {
  id: "ecr-count-rule-can-expire-the-running-image",
  title:
    "an ECR rule keeping the last N pushed images expires the running one after N pushes whose deploys failed",
  sources: [
    "https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html",
    "https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_parameters.html",
  ],
  fix: "tag deployed images apart (deployed-<env>-…) and keep them with a rule of higher priority than the count rule",
  check: (templates) =>
    templates.flatMap((t) =>
      resourcesOf(t).flatMap(([id, r]) => {
        if (r.Type !== "AWS::ECR::Repository") return [];
        const text = (r.Properties?.LifecyclePolicy as Props | undefined)?.LifecyclePolicyText;
        if (typeof text !== "string") return [];
        const rules = ((JSON.parse(text) as { rules?: EcrRule[] }).rules ?? []).sort(
          (a, b) => a.rulePriority - b.rulePriority,
        );
        // The count of pushes is the last tagged count rule; the ones above it are what it cannot expire.
        const counts = rules
          .map((rule, i) => ({ rule, i }))
          .filter(
            ({ rule }) =>
              rule.selection.countType === "imageCountMoreThan" && rule.selection.tagStatus !== "untagged",
          );
        const index = counts.at(-1)?.i ?? -1;
        const rule = rules[index];
        if (!rule) return [];
        const prefixes = rule.selection.tagPrefixList ?? [];
        const protectedAbove = rules
          .slice(0, index)
          .some(
            (above) =>
              above.selection.tagStatus === "tagged" &&
              (above.selection.tagPrefixList ?? []).some((p) => !prefixes.some((mine) => p.startsWith(mine))),
          );
        return protectedAbove
          ? []
          : [
              {
                rule: ecrCountCanExpireRunningImage.id,
                stack: t.stack,
                resource: id,
                message: `rule ${rule.rulePriority} keeps the last ${JSON.stringify(prefixes)} pushes, with no rule above keeping deployed images`,
              },
            ];
      }),
    ),
};

/** The rules over one synthesis: run by `stayup check` and as a CDK validation plugin. */
export const lifecycleRules: LifecycleRule[] = [
  retainedFixedName,
  refreshWaitsOnInstances,
  reservedConcurrency,
  unusedNatGateway,
  amiChangesEveryDeploy,
  ecrCountCanExpireRunningImage,
];

export function checkLifecycle(templates: CheckedTemplate[], rules = lifecycleRules): LifecycleViolation[] {
  return rules.flatMap((rule) => rule.check(templates));
}

/** One topology's synthesis of an environment, for the rule across topologies. */
export interface TopologySynthesis {
  topology: string;
  templates: CheckedTemplate[];
}

/**
 * Across topologies: a fixed physical name that two topologies' stacks of different names both
 * claim. A topology switch deploys the new topology's stacks while the old ones still exist, and
 * AWS refuses the second resource of that name (same type, account and region). Stacks of the same
 * name are one stack updated in place, and do not count.
 */
export const nameSharedByTopologies = {
  id: "physical-name-shared-by-two-topologies",
  title:
    "two topologies' different stacks claim the same physical name: switching topology fails on the second create",
  sources: [
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-name.html",
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html",
  ],
  fix: "give each topology's resource a name of its own (loadBalancerName(stack, topology))",
  check(syntheses: TopologySynthesis[]): LifecycleViolation[] {
    const claims = new Map<string, { topology: string; stack: string; resource: string }[]>();
    for (const { topology, templates } of syntheses)
      for (const t of templates)
        for (const [id, r] of resourcesOf(t)) {
          const property = physicalNameProperty[r.Type];
          const name = property ? r.Properties?.[property] : undefined;
          if (typeof name !== "string") continue;
          const key = `${r.Type} ${t.region} ${name}`;
          claims.set(key, [...(claims.get(key) ?? []), { topology, stack: t.stack, resource: id }]);
        }
    const violations: LifecycleViolation[] = [];
    for (const [key, owners] of claims) {
      const stacks = new Set(owners.map((o) => o.stack));
      const topologies = new Set(owners.map((o) => o.topology));
      if (stacks.size < 2 || topologies.size < 2) continue;
      violations.push({
        rule: this.id,
        stack: [...stacks].join(", "),
        resource: owners.map((o) => `${o.topology}: ${o.stack}/${o.resource}`).join("; "),
        message: `${key} is claimed by ${[...topologies].join(" and ")}`,
      });
    }
    return violations;
  },
};

export const formatViolations = (violations: LifecycleViolation[]): string =>
  violations.map((v) => `  ${v.rule}: ${v.stack} ${v.resource}: ${v.message}`).join("\n");

/**
 * The rules as a CDK policy validation plugin: synthesis (stayup's, and the CDK CLI's for a deploy)
 * reports a violation like cdk-nag's and cfn-guard's, and stops.
 */
export class LifecycleRulesValidator implements IPolicyValidationPluginBeta1 {
  readonly name = "stayup-lifecycle";
  readonly version = "1";
  readonly ruleIds = lifecycleRules.map((r) => r.id);

  validate(context: IPolicyValidationContextBeta1): PolicyValidationPluginReportBeta1 {
    const templates: CheckedTemplate[] = context.templatePaths.map((templatePath) => ({
      stack: templatePath,
      region: "",
      templatePath,
      template: JSON.parse(readFileSync(templatePath, "utf8")) as CfnTemplate,
    }));
    const violations: PolicyViolationBeta1[] = lifecycleRules.flatMap((rule) => {
      const found = rule.check(templates);
      if (found.length === 0) return [];
      return [
        {
          ruleName: rule.id,
          description: `${rule.title} (${rule.sources.join(", ")})`,
          fix: rule.fix,
          violatingResources: found.map((v) => ({
            resourceLogicalId: v.resource,
            templatePath: v.stack,
            locations: [v.message],
          })),
        },
      ];
    });
    return { success: violations.length === 0, violations };
  }
}
