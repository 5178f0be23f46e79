import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { ResolvedStack } from "../stack/index.ts";
import { StayupError } from "../shared/errors.ts";
import { ROUTE53_METRICS_REGION, rendersDnsFailover, stackIds } from "./naming.ts";

// stayup runs on Node.js 20 and pins SDK versions that support it; the SDK's notice about its
// future releases needing Node 22 is for whoever upgrades those pins, not for every user.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

/** Who the AWS credentials belong to; a clear error, before anything is created, if there are none. */
export async function requireCredentials(
  region: string,
  /** What the command would have done: deploy says nothing was created; destroy and outputs read. */
  consequence = "nothing was created",
  /** The environment whose account the credentials must be in, when the description names one. */
  environment?: Pick<ResolvedStack, "environment" | "aws">,
): Promise<{ account: string; arn: string }> {
  let identity: { account: string; arn: string };
  try {
    const answer = await new STSClient({ region, maxAttempts: 1 }).send(new GetCallerIdentityCommand({}));
    identity = { account: answer.Account ?? "", arn: answer.Arn ?? "" };
  } catch (error) {
    throw new StayupError(
      `no usable AWS credentials: ${(error as Error).message}`,
      `configure credentials (aws configure sso, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); ${consequence}`,
    );
  }
  checkAccount(identity, environment);
  return identity;
}

/**
 * Credentials of another account than the environment's are refused before anything is read or
 * changed: with dev's credentials, prod's stacks are never even looked for.
 */
export function checkAccount(
  identity: { account: string; arn: string },
  environment: Pick<ResolvedStack, "environment" | "aws"> | undefined,
): void {
  const wanted = environment?.aws.account;
  if (!wanted || identity.account === wanted) return;
  throw new StayupError(
    `the credentials are for account ${identity.account} (${identity.arn}), but environments.${environment.environment}.aws.account is ${wanted}`,
    `use credentials of account ${wanted} for ${environment.environment} (another AWS_PROFILE, or the ${environment.environment} deploy role); nothing was read or changed`,
  );
}

const cdkCli = () =>
  path.join(path.dirname(createRequire(import.meta.url).resolve("aws-cdk/package.json")), "bin", "cdk");

/** Runs the CDK CLI (deploy/destroy in dependency order, with its own progress display). */
export function runCdk(args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cdkCli(), ...args], {
      stdio: "inherit",
      env: { ...process.env, ...env },
    });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

/** Outputs of the deployed stacks (load-balancer URL, public IP...). */
export async function stackOutputs(
  stack: ResolvedStack,
): Promise<{ stack: string; key: string; value: string }[]> {
  const ids = stackIds(stack);
  const primary = stack.regions.primary.name;
  const secondary = stack.regions.secondary?.name;
  const names: [string, string][] =
    stack.topology === "load-balanced"
      ? [[ids.web, primary]]
      : stack.topology === "ecs"
        ? [
            [ids.repository, primary],
            [ids.service, primary],
          ]
        : [[ids.singleInstance, primary]];
  if (secondary && stack.topology === "load-balanced") names.push([ids.secondaryWeb, secondary]);
  if (rendersDnsFailover(stack)) names.push([ids.dnsFailover, ROUTE53_METRICS_REGION]);
  const outputs: { stack: string; key: string; value: string }[] = [];
  for (const [name, region] of names) {
    const client = new CloudFormationClient({ region });
    try {
      const res = await client.send(new DescribeStacksCommand({ StackName: name }));
      for (const o of res.Stacks?.[0]?.Outputs ?? []) {
        outputs.push({ stack: name, key: o.OutputKey ?? "", value: o.OutputValue ?? "" });
      }
    } catch (error) {
      throw new StayupError(
        `cannot read stack ${name}: ${(error as Error).message}`,
        `deploy it first: stayup deploy --env ${stack.environment}`,
      );
    }
  }
  return outputs;
}
