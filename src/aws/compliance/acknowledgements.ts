/**
 * Every cdk-nag (AwsSolutions) and cfn-guard (Control Tower rules) finding that stayup
 * acknowledges instead of fixing, with the reason a reviewer needs. Nothing is acknowledged
 * anywhere else. `when` limits an acknowledgment to the descriptions it is true for.
 */
import type { ResolvedStack } from "../../stack/index.ts";
import type { StayupStacks } from "../stacks.ts";
import type { CiEnvironmentAccess } from "../ci/ci-stack.ts";
import { webGroupName } from "../naming.ts";

export type StackKind = Exclude<keyof StayupStacks, "ordered">;

export interface Acknowledgement {
  /**
   * As synthesis prints it: `AwsSolutions::AwsSolutions-X[finding]` or `cdk-validator-cfnguard::rule`;
   * a function when the finding names something from the description (a region, a group).
   */
  id: string | ((stack: ResolvedStack) => string);
  reason: string;
  stacks: StackKind[];
  when?: (stack: ResolvedStack) => boolean;
}

const nag = (rule: string) => `AwsSolutions::AwsSolutions-${rule}`;
const guard = (rule: string) => `cdk-validator-cfnguard::${rule}`;
const instances: StackKind[] = ["web", "singleInstance", "access"];

/** The finding id an acknowledgment matches for this description. */
export const acknowledgementId = (a: Acknowledgement, stack: ResolvedStack): string =>
  typeof a.id === "string" ? a.id : a.id(stack);

export const acknowledgements: Acknowledgement[] = [
  // ── Network and load balancer ─────────────────────────────────────────────────────────────
  {
    id: nag("EC23"),
    reason:
      "The internet-facing entry point (the ALB, or the single instance that has none) must accept HTTP/HTTPS from anywhere; only ports 80 and 443 are open.",
    stacks: ["network"],
  },
  {
    id: guard("alb_http_to_https_redirection_check"),
    reason:
      "No domain is configured (aws.https), so no ACM certificate can exist; with aws.https set, port 80 answers 301 to HTTPS.",
    stacks: ["web", "service"],
    when: (s) => !s.aws.https,
  },
  {
    id: guard("elbv2_deletion_protection_enabled_check"),
    reason: "dev is torn down often (seed 004's table); prod turns deletion protection on.",
    stacks: ["web", "service"],
    when: (s) => !s.deletionProtection,
  },
  // ── ALB access-log bucket ─────────────────────────────────────────────────────────────────
  {
    id: nag("S1"),
    reason: "This bucket holds the ALB's access logs; logging access to the log bucket would recurse.",
    stacks: ["web", "service"],
  },
  {
    id: guard("s3_bucket_logging_enabled_check"),
    reason: "This bucket holds the ALB's access logs; logging access to the log bucket would recurse.",
    stacks: ["web", "service"],
  },
  {
    id: guard("s3_bucket_default_encryption_kms_check"),
    reason:
      "ALB access logs can only be delivered to buckets encrypted with SSE-S3 (AWS documents no KMS support).",
    stacks: ["web", "service"],
  },
  {
    id: guard("s3_event_notifications_enabled_check"),
    reason: "Nothing consumes access-log delivery events; logs are read on demand.",
    stacks: ["web", "service"],
  },
  {
    id: guard("s3_bucket_object_lock_enabled_check"),
    reason:
      "Access logs expire after aws.logRetentionDays by a lifecycle rule; Object Lock would keep them and block `stayup destroy`. Versioning is on.",
    stacks: ["web", "service"],
  },
  // ── Logs ─────────────────────────────────────────────────────────────────────────────────
  {
    id: guard("cloudwatch_log_group_retention_period_check"),
    reason:
      "Retention is a stack-description setting (aws.logRetentionDays, 30 days by default to bound cost).",
    stacks: ["network", ...instances, "dnsFailover", "service"],
    when: (s) => s.aws.logRetentionDays < 365,
  },
  {
    id: guard("cloudwatch_log_group_encrypted_check"),
    reason:
      "CloudWatch Logs encrypts at rest with service keys; these logs hold no secrets (the Redis token is never logged), so a customer key would add cost and key-policy management for no gain.",
    stacks: ["network", ...instances, "dnsFailover", "service"],
  },
  // ── Instances ────────────────────────────────────────────────────────────────────────────
  {
    id: (s) =>
      nag(`IAM5[Resource::arn:<AWS::Partition>:ec2:${s.regions.primary.name}:<AWS::AccountId>:instance/*]`),
    reason:
      "AssociateAddress/AttachVolume must name the new instance, unknown at deploy time; a condition limits it to instances of this one group (aws:autoscaling:groupName).",
    stacks: ["access", "singleInstance"],
  },
  {
    id: (s) =>
      nag(
        `IAM5[Resource::arn:<AWS::Partition>:ec2:${s.regions.primary.name}:<AWS::AccountId>:network-interface/*]`,
      ),
    reason:
      "As for instance/*: the association names the new instance's interface; limited by the group condition.",
    stacks: ["access", "singleInstance"],
  },
  {
    id: nag("IAM5[Resource::*]"),
    reason:
      "Only actions that support no resource-level permissions are granted on *: Session Manager's ssm:UpdateInstanceInformation and ssmmessages:* channels (instances; no parameter reads, unlike AmazonSSMManagedInstanceCore), ec2:DescribeVolumes (single instance) and autoscaling:DescribeAutoScalingGroups (the failover Lambdas read the group before resizing it).",
    stacks: [...instances, "dnsFailover"],
  },
  {
    id: guard("autoscaling_mixed_instances_policy_multiple_instance_types_check"),
    reason:
      "A group of exactly one instance with a fixed role (bastion, single instance) gains nothing from a second type.",
    stacks: ["access", "singleInstance"],
  },
  {
    id: guard("autoscaling_multiple_az_check"),
    reason:
      "The web group spans one private subnet in each of the description's AZs (VPCZoneIdentifier, asserted by test/aws-stacks.test.ts); this rule reads only the AvailabilityZones property, which cfn-lint (W3010) asks not to hard-code.",
    stacks: ["web", "cluster"],
  },
  {
    id: guard("autoscaling_multiple_az_check"),
    reason:
      "The bastion is one instance; the single instance is pinned to its data volume's AZ (seed 003's trade-off, documented on the construct).",
    stacks: ["access", "singleInstance"],
  },
  {
    id: guard("ec2_launch_template_public_ip_disabled_check"),
    reason:
      "The bastion and the single instance sit in public subnets without NAT: they need a public address to call the EC2 API that moves their Elastic IP onto them, which then replaces it.",
    stacks: ["access", "singleInstance"],
  },
  {
    id: nag("AS3"),
    reason:
      "Groups of one (bastion, single instance) report replacements through their activity history and group metrics.",
    stacks: ["access", "singleInstance"],
  },
  {
    id: nag("EC26"),
    reason:
      "cdk-nag's EC26 throws on a group with a MixedInstancesPolicy (it reads a top-level LaunchTemplate); the launch template's only volume is encrypted, which test/aws-stacks.test.ts asserts.",
    stacks: ["web", "cluster"],
  },
  {
    id: guard("autoscaling_group_nitro_encryption_in_transit_override_check"),
    reason:
      "Web instances never talk to each other and Redis traffic is TLS; burstable t3/t3a types keep cost low. Set web.instanceTypes to Nitro types with in-transit encryption (m6i, c6i, ...) to satisfy it.",
    stacks: ["web", "cluster"],
    when: (s) => s.web.instanceTypes.some((t) => /^t\d/.test(t)),
  },
  // ── ECS (topology ecs) ───────────────────────────────────────────────────────────────────
  {
    id: nag("IAM5[Action::ecs:Submit*]"),
    reason:
      "CDK's policy for the ECS agent on container instances (AWS's AmazonEC2ContainerServiceforEC2Role, scoped to this cluster): the agent reports task and container state changes with the ecs:Submit* actions.",
    stacks: ["cluster"],
  },
  {
    id: nag("IAM5[Resource::*]"),
    reason:
      "The ECS agent's ecs:DiscoverPollEndpoint, ecr:GetAuthorizationToken and logs actions, and Session Manager's ssm:UpdateInstanceInformation and ssmmessages channels, support no resource-level permissions; cluster-scoped actions name this cluster.",
    stacks: ["cluster"],
  },
  {
    id: nag("IAM5[Resource::*]"),
    reason:
      "The task execution role's ecr:GetAuthorizationToken supports no resource-level permissions; image pulls are limited to this repository, secrets to the Redis token and URL parameter.",
    stacks: ["service"],
  },
  {
    id: nag("ECS2"),
    reason:
      "Only non-secret settings are plain environment (PORT, HOST, the region shown on the page); the Redis endpoint and AUTH token are injected as secrets (SSM parameter, Secrets Manager).",
    stacks: ["service"],
  },
  // ── Redis ────────────────────────────────────────────────────────────────────────────────
  {
    id: nag("SMG4"),
    reason:
      "Rotating an ElastiCache AUTH token needs a two-phase ROTATE/SET update coordinated with every instance; until that Lambda exists, rotation is a documented manual step.",
    stacks: ["database"],
  },
  {
    id: nag("AEC5"),
    reason:
      "Redis listens only in isolated subnets behind a security group that admits the web instances alone; a non-default port adds obscurity, not protection.",
    stacks: ["database"],
  },
  {
    id: guard("elasticache_repl_grp_rbac_auth_enabled_check"),
    reason:
      "Clients authenticate with the AUTH token from Secrets Manager over TLS; the one client (the web service) needs no RBAC users.",
    stacks: ["database"],
  },
  {
    id: nag("AEC4"),
    reason: "dev runs one Redis node to save cost (seed 004's table); prod sets redis.multiAz.",
    stacks: ["database"],
    when: (s) => !s.redis.multiAz,
  },
  {
    id: guard("elasticache_repl_grp_auto_failover_enabled_check"),
    reason: "Automatic failover needs a replica; dev runs one node to save cost, prod sets redis.multiAz.",
    stacks: ["database"],
    when: (s) => !s.redis.multiAz,
  },
  // ── DNS failover (us-east-1) ─────────────────────────────────────────────────────────────
  {
    id: (s) =>
      nag(
        `IAM5[Resource::arn:<AWS::Partition>:autoscaling:${s.regions.secondary?.name}:<AWS::AccountId>:autoScalingGroup:*:autoScalingGroupName/${webGroupName(s)}]`,
      ),
    reason:
      "A group's ARN holds an id assigned at creation; the ARN pins the secondary region, the account and the group's name, and UpdateAutoScalingGroup is the only action granted.",
    stacks: ["dnsFailover"],
  },
  {
    id: guard("lambda_inside_vpc_check"),
    reason:
      "The failover Lambdas call only AWS APIs (Auto Scaling in the secondary region, SNS). They run in us-east-1, where stayup may have no VPC; a VPC would need NAT or endpoints there, one more thing that must work while a region is down.",
    stacks: ["dnsFailover"],
  },
  {
    id: guard("lambda_inside_vpc_check"),
    reason:
      "CDK's auto-delete handler for the ALB log bucket (dev, no deletion protection) calls only S3 and runs only when the stack is deleted; in a VPC it would need NAT or an S3 endpoint at the moment the network is being torn down.",
    stacks: ["web", "service"],
    when: (s) => !s.deletionProtection,
  },
  // ── CDK's own warnings ──────────────────────────────────────────────────────────────────
  {
    id: "Annotation::@aws-cdk/aws-autoscaling:desiredCapacitySet",
    reason:
      "The primary's desired capacity is part of the stack description: a deploy applies it on purpose. (The secondary's is left unset: the failover Lambdas own it.)",
    stacks: ["web"],
  },
];

/**
 * cfn-lint checks silenced on one resource each (never globally), with the reason. Applied as the
 * resource's `Metadata.cfn-lint` by `silenceCfnLint`.
 */
export const cfnLintExceptions: {
  rule: string;
  resource: "web-group" | "container-instance-group";
  reason: string;
}[] = [
  {
    rule: "E3016",
    resource: "web-group",
    reason:
      "UpdatePolicy.AutoScalingInstanceRefresh is CloudFormation's instance-refresh policy (CDK ≥ 2.263, July 2026); cfn-lint 1.51's schema predates it.",
  },
  {
    rule: "E3016",
    resource: "container-instance-group",
    reason:
      "UpdatePolicy.AutoScalingInstanceRefresh is CloudFormation's instance-refresh policy (CDK ≥ 2.263, July 2026); cfn-lint 1.51's schema predates it.",
  },
];

/**
 * Findings acknowledged on the `stayup-ci` stack (GitHub OIDC provider and deploy roles): the only
 * wildcards its roles hold, one finding per stack or repository.
 */
export function ciAcknowledgements(environments: CiEnvironmentAccess[]): { id: string; reason: string }[] {
  // cdk-nag writes the account as it is in the template: a literal when the description names it.
  const account = (e: CiEnvironmentAccess) => e.account ?? "<AWS::AccountId>";
  const stackArns = environments.flatMap((e) =>
    e.stacks.map((s) => ({
      id: nag(
        `IAM5[Resource::arn:<AWS::Partition>:cloudformation:${s.region}:${account(e)}:stack/${s.name}/*]`,
      ),
      reason:
        "A stack's ARN ends in an id CloudFormation assigns at creation; the ARN pins the region, the account and the stack's name, and DescribeStacks (reading outputs) is the only action granted.",
    })),
  );
  const ecrLogin = environments.some((e) => e.imageRepositories.length > 0 || e.ecsTeardown)
    ? [
        {
          id: nag("IAM5[Resource::*]"),
          reason:
            "ecr:GetAuthorizationToken (docker login) and autoscaling:DescribeAutoScalingGroups (destroy reads the container instances) have no resource-level permissions: AWS accepts only `*`. Pushing is limited to the environment's repositories, changes to its service and container-instance group.",
        },
      ]
    : [];
  const groupArns = environments.flatMap((e) =>
    e.ecsTeardown
      ? [
          {
            id: nag(
              `IAM5[Resource::arn:<AWS::Partition>:autoscaling:${e.ecsTeardown.region}:${account(e)}:autoScalingGroup:*:autoScalingGroupName/${e.ecsTeardown.group}]`,
            ),
            reason:
              "A group's ARN holds an id AWS assigns at creation; the ARN pins the region, the account and the group's name, and only destroy's scale-in-protection and size changes are granted.",
          },
        ]
      : [],
  );
  return [...stackArns, ...ecrLogin, ...groupArns];
}
