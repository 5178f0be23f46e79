import { DefaultStackSynthesizer, RemovalPolicy } from "aws-cdk-lib";
import { resourcePrefix, ROUTE53_METRICS_REGION } from "../stack/derived.ts";
import type { ResolvedStack } from "../stack/index.ts";

export { resourcePrefix, ROUTE53_METRICS_REGION };

/**
 * The CDK bootstrap qualifier the stacks are synthesized with (DefaultStackSynthesizer's, not
 * configured): it names the bootstrap roles (`cdk-<qualifier>-deploy-role-<account>-<region>`) the
 * CI roles may assume and the version parameter the deploy preflight reads.
 */
export const CDK_QUALIFIER = DefaultStackSynthesizer.DEFAULT_QUALIFIER;

export const stackIds = (stack: ResolvedStack) => {
  const prefix = resourcePrefix(stack);
  return {
    network: `${prefix}-network`,
    access: `${prefix}-access`,
    database: `${prefix}-database`,
    web: `${prefix}-web`,
    singleInstance: `${prefix}-single-instance`,
    secondaryNetwork: `${prefix}-secondary-network`,
    secondaryDatabase: `${prefix}-secondary-database`,
    secondaryWeb: `${prefix}-secondary-web`,
    dnsFailover: `${prefix}-dns-failover`,
    repository: `${prefix}-repository`,
    cluster: `${prefix}-cluster`,
    service: `${prefix}-service`,
  };
};

/** The web Auto Scaling group's name, the same in both regions (the failover Lambdas resize it). */
export const webGroupName = (stack: ResolvedStack) => `${resourcePrefix(stack)}-web`;

/**
 * Whether the description renders Route 53 failover (the dns-failover stack): a secondary region
 * behind load balancers, and a hosted zone to hold the records.
 */
export const rendersDnsFailover = (stack: ResolvedStack): boolean =>
  Boolean(stack.regions.secondary && stack.topology === "load-balanced" && stack.dns && stack.aws.hostedZone);

/**
 * A secondary region that nothing could switch to: without aws.hostedZone no failover record is
 * deployed, so the secondary would be paid for and never receive a client. `deploy` refuses it,
 * `check` and `cost` say so; the local runtime, with its own DNS, runs it.
 */
export function secondaryWithoutFailover(stack: ResolvedStack): { problem: string; fix: string } | undefined {
  const secondary = stack.regions.secondary;
  if (!secondary || stack.topology !== "load-balanced" || rendersDnsFailover(stack)) return undefined;
  return {
    problem: `regions.secondary (${secondary.name}) without aws.hostedZone: no Route 53 failover record would be deployed, so nothing could send clients to ${secondary.name}; its stacks would cost money and never serve`,
    fix: "set aws.hostedZone (a public zone that holds dns.name) to deploy Route 53 failover, or remove regions.secondary to deploy one region",
  };
}

/**
 * The name a region's load balancer answers on. With failover routing each region publishes its
 * own name and the failover record for `dns.name` points at one of them.
 */
export const regionalName = (stack: ResolvedStack, role: "primary" | "secondary"): string | undefined => {
  if (!stack.dns || !stack.aws.hostedZone) return undefined;
  return rendersDnsFailover(stack) ? `${role}.${stack.dns.name}` : stack.dns.name;
};

/**
 * What a stateful resource (log group, log bucket) becomes when its stack is deleted: destroyed in
 * an environment without deletion protection (dev), kept where it has it (prod).
 */
export const removalPolicyOf = (stack: ResolvedStack): RemovalPolicy =>
  stack.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

/**
 * The fixed physical name of a resource destroyed with its stack, or none (CloudFormation makes a
 * unique one) where the resource is kept: a kept resource with a fixed name makes the next create
 * of the stack fail with "already exists" (docs/aws-lifecycle.md).
 */
export const nameUnlessRetained = (stack: ResolvedStack, name: string): string | undefined =>
  stack.deletionProtection ? undefined : name;

/**
 * The load balancer's name: one per topology, so that the stacks of two topologies can exist at
 * once (a switch deploys the new one before the old one is destroyed). The load-balanced
 * topology's keeps the name it always had; ecs's is its own.
 */
export const loadBalancerName = (stack: ResolvedStack, topology: "load-balanced" | "ecs"): string =>
  topology === "ecs" ? `${resourcePrefix(stack)}-ecs-alb` : `${resourcePrefix(stack)}-alb`;
