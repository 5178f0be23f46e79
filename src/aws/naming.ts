import { resourcePrefix, ROUTE53_METRICS_REGION } from "../stack/derived.ts";
import type { ResolvedStack } from "../stack/index.ts";

export { resourcePrefix, ROUTE53_METRICS_REGION };

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
 * The name a region's load balancer answers on. With failover routing each region publishes its
 * own name and the failover record for `dns.name` points at one of them.
 */
export const regionalName = (stack: ResolvedStack, role: "primary" | "secondary"): string | undefined => {
  if (!stack.dns || !stack.aws.hostedZone) return undefined;
  return rendersDnsFailover(stack) ? `${role}.${stack.dns.name}` : stack.dns.name;
};
