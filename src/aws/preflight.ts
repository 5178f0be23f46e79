import { DescribeAddressesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { GetRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { GetHostedZoneCommand, Route53Client } from "@aws-sdk/client-route-53";
import {
  GetAWSDefaultServiceQuotaCommand,
  GetServiceQuotaCommand,
  ServiceQuotasClient,
} from "@aws-sdk/client-service-quotas";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { ResolvedStack } from "../stack/index.ts";
import { CDK_QUALIFIER } from "./naming.ts";

/**
 * What `stayup deploy` checks in the account before it changes anything: each item is something
 * the stacks need that a fresh account lacks, with the command that fixes it. CloudFormation
 * would otherwise fail half-way through (and roll back what it had created).
 */

export interface PreflightProblem {
  check: "bootstrap" | "ecs-service-linked-role" | "elastic-ip-quota" | "hosted-zone";
  region?: string;
  problem: string;
  fix: string;
}

export interface PreflightStack {
  name: string;
  region: string;
  template: { Resources?: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
  /** Already deployed (its Elastic IPs are already counted among the account's addresses). */
  deployed?: boolean;
}

type ClientConfig = (region: string) => Record<string, unknown> & { region: string };

/** The Elastic IP quota's code (EC2-VPC Elastic IPs, per region). */
export const ELASTIC_IP_QUOTA_CODE = "L-0263D0A3";
/** Its default in a new account. https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html */
export const ELASTIC_IP_DEFAULT_QUOTA = 5;
/** The CDK bootstrap version the templates' BootstrapVersion rule asks for at least. */
export const MIN_BOOTSTRAP_VERSION = 6;

const isMissing = (error: unknown) =>
  /NotFound|NoSuch|not found|does not exist/i.test(`${(error as Error).name} ${(error as Error).message}`);

/** Elastic IPs a template allocates: its AWS::EC2::EIP resources (each NAT gateway has one). */
export const elasticIpsIn = (template: PreflightStack["template"]) =>
  Object.values(template.Resources ?? {}).filter((r) => r.Type === "AWS::EC2::EIP").length;

export async function preflight(
  stack: ResolvedStack,
  account: string,
  stacks: PreflightStack[],
  config: ClientConfig = (region) => ({ region }),
  /** The Elastic IP quota of a region (default: asked of Service Quotas). */
  quotaOf: (region: string) => Promise<number> = (region) => elasticIpQuota(config(region)),
): Promise<PreflightProblem[]> {
  const problems: PreflightProblem[] = [];
  const regions = [...new Set(stacks.map((s) => s.region))];

  // CDK bootstrap: the templates check /cdk-bootstrap/hnb659fds/version and publish their assets
  // to the bucket bootstrap creates. https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html
  for (const region of regions) {
    try {
      const version = Number(
        (
          await new SSMClient(config(region)).send(
            new GetParameterCommand({ Name: `/cdk-bootstrap/${CDK_QUALIFIER}/version` }),
          )
        ).Parameter?.Value,
      );
      if (!(version >= MIN_BOOTSTRAP_VERSION)) {
        problems.push({
          check: "bootstrap",
          region,
          problem: `CDK bootstrap in ${region} is version ${version}, older than ${MIN_BOOTSTRAP_VERSION}`,
          fix: `npx cdk bootstrap aws://${account}/${region}`,
        });
      }
    } catch (error) {
      if (!isMissing(error)) throw error;
      problems.push({
        check: "bootstrap",
        region,
        problem: `${region} is not CDK-bootstrapped (no /cdk-bootstrap/${CDK_QUALIFIER}/version parameter)`,
        fix: `npx cdk bootstrap aws://${account}/${region}`,
      });
    }
  }

  // The ECS capacity provider needs the ECS service-linked role, which exists only once ECS has
  // been used in the account. https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-service-linked-roles.html
  if (stack.topology === "ecs") {
    try {
      await new IAMClient(config(stack.regions.primary.name)).send(
        new GetRoleCommand({ RoleName: "AWSServiceRoleForECS" }),
      );
    } catch (error) {
      if (!isMissing(error)) throw error;
      problems.push({
        check: "ecs-service-linked-role",
        problem: "the ECS service-linked role AWSServiceRoleForECS does not exist yet",
        fix: "aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com",
      });
    }
  }

  // Elastic IPs: each region's quota against what is allocated plus what the new stacks allocate.
  for (const region of regions) {
    const needed = stacks
      .filter((s) => s.region === region && !s.deployed)
      .reduce((sum, s) => sum + elasticIpsIn(s.template), 0);
    if (needed === 0) continue;
    const allocated =
      (await new EC2Client(config(region)).send(new DescribeAddressesCommand({}))).Addresses?.length ?? 0;
    const quota = await quotaOf(region);
    if (allocated + needed > quota) {
      problems.push({
        check: "elastic-ip-quota",
        region,
        problem: `${region}: ${needed} Elastic IP(s) to allocate, ${allocated} already allocated, quota ${quota}`,
        fix: `release unused addresses, or: aws service-quotas request-service-quota-increase --region ${region} --service-code ec2 --quota-code ${ELASTIC_IP_QUOTA_CODE} --desired-value ${allocated + needed}`,
      });
    }
  }

  // The hosted zone the records go into: it must exist and be the zone the description names.
  const zone = stack.aws.hostedZone;
  if (zone) {
    try {
      const found = await new Route53Client(config("us-east-1")).send(
        new GetHostedZoneCommand({ Id: zone.id }),
      );
      const name = found.HostedZone?.Name?.replace(/\.$/, "");
      if (name !== zone.name) {
        problems.push({
          check: "hosted-zone",
          problem: `hosted zone ${zone.id} is ${name}, not ${zone.name}`,
          fix: "set aws.hostedZone to the zone's id and name (aws route53 list-hosted-zones)",
        });
      }
    } catch (error) {
      if (!isMissing(error)) throw error;
      problems.push({
        check: "hosted-zone",
        problem: `hosted zone ${zone.id} (${zone.name}) does not exist in this account`,
        fix: `aws route53 create-hosted-zone --name ${zone.name} --caller-reference stayup-$(date +%s), then delegate ${zone.name} to its name servers and set aws.hostedZone.id`,
      });
    }
  }
  return problems;
}

/**
 * The applied quota (after any increase), else AWS's default for the account, else 5 when Service
 * Quotas cannot be asked (no permission, or an emulator without it).
 */
export async function elasticIpQuota(c: Record<string, unknown> & { region: string }): Promise<number> {
  const client = new ServiceQuotasClient(c);
  const input = { ServiceCode: "ec2", QuotaCode: ELASTIC_IP_QUOTA_CODE };
  for (const command of [new GetServiceQuotaCommand(input), new GetAWSDefaultServiceQuotaCommand(input)]) {
    try {
      const value = (await client.send(command as GetServiceQuotaCommand)).Quota?.Value;
      if (typeof value === "number") return value;
    } catch (error) {
      if (
        !isMissing(error) &&
        !/NotImplemented|not yet implemented|AccessDenied|not available in the current Region/i.test(
          `${(error as Error).name} ${(error as Error).message}`,
        )
      )
        throw error;
    }
  }
  return ELASTIC_IP_DEFAULT_QUOTA;
}

/** One list, what is missing and the command that fixes each. */
export function formatPreflight(problems: PreflightProblem[]): string {
  return [
    `the account is not ready for this deploy (${problems.length} to fix, nothing was changed):`,
    ...problems.map((p, i) => `  ${i + 1}. ${p.problem}\n     fix: ${p.fix}`),
  ].join("\n");
}
