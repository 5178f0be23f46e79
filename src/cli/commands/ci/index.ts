import path from "node:path";
import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import type { Command } from "commander";
import { ciStackDrift, ciStackName, describeDrift, requireCi, synthesizeCi } from "../../../aws/ci/ci-app.ts";
import { deployRoleName } from "../../../aws/ci/ci-stack.ts";
import { requireCredentials, runCdk } from "../../../aws/deploy.ts";
import { deploymentOrder, imageRepositories } from "../../../aws/plan.ts";
import { synthesize } from "../../../aws/synth.ts";
import { StayupError } from "../../../shared/errors.ts";
import { formatTable } from "../../../shared/table.ts";
import {
  type EnvironmentName,
  environmentNames,
  loadStack,
  type ResolvedStack,
} from "../../../stack/index.ts";
import { configOption, type DescriptionOptions, envOption, topologyOption } from "../../options.ts";

/** The repository variable that holds an environment's deploy role ARN (the workflows read it). */
export const roleVariable = (env: EnvironmentName) => `AWS_DEPLOY_ROLE_${env.toUpperCase()}`;

/** What a workflow asks stayup before deploying: topology, order, where the image goes. */
export interface CiPlan {
  environment: EnvironmentName;
  topology: string;
  region: string;
  /** The environment's account when the description names it. */
  account?: string;
  /** Deployment order (the synthesized app's dependencies); destroy runs it in reverse. */
  stacks: { name: string; region: string; dependsOn: string[] }[];
  destroyOrder: string[];
  imageRepositories: { name: string; region: string; stack: string }[];
  deployRole: { name: string; variable: string };
}

export async function ciPlan(stack: ResolvedStack, outdir: string): Promise<CiPlan> {
  synthesize(stack, outdir);
  const order = deploymentOrder(outdir);
  return {
    environment: stack.environment,
    topology: stack.topology,
    region: stack.regions.primary.name,
    ...(stack.aws.account ? { account: stack.aws.account } : {}),
    stacks: order.map(({ name, region, dependsOn }) => ({ name, region, dependsOn })),
    destroyOrder: order.map((s) => s.name).reverse(),
    imageRepositories: imageRepositories(order),
    deployRole: { name: deployRoleName(stack, stack.environment), variable: roleVariable(stack.environment) },
  };
}

export function register(program: Command): void {
  const ci = program
    .command("ci")
    .description("GitHub Actions: the stayup-ci stack (OIDC deploy roles) and what the workflows ask stayup");

  ci.command("plan")
    .description(
      "what a deploy of one environment does: topology, stacks in dependency order, image repository; needs no credentials",
    )
    .addOption(configOption())
    .addOption(envOption())
    .addOption(topologyOption())
    .option("-o, --out <dir>", "where the synthesized assembly is written", "cdk.out")
    .option("--json", "as JSON (what the workflows read)")
    .option(
      "--compare-deployed",
      "also compare the deployed stayup-ci stack with the description (needs credentials): a role frozen at bootstrap gets AccessDenied",
    )
    .action(async (opts: DescriptionOptions & { out: string; json?: boolean; compareDeployed?: boolean }) => {
      const stack = await loadStack(opts.config, opts.env, { topology: opts.topology });
      const plan = await ciPlan(stack, path.resolve(opts.out, opts.env));
      if (opts.compareDeployed) {
        // The roles hold what every environment's app needs, with this run's topology.
        const stacks = {} as Record<EnvironmentName, ResolvedStack>;
        for (const env of environmentNames)
          stacks[env] = await loadStack(opts.config, env, { topology: opts.topology });
        const identity = await requireCredentials(
          stack.regions.primary.name,
          "credentials are missing, so the deployed CI stack was not compared",
        );
        const synthesis = synthesizeCi(stacks, path.resolve(opts.out, "ci"), { account: identity.account });
        const drift = await ciStackDrift(synthesis, new CloudFormationClient({ region: synthesis.region }));
        const verdict = describeDrift(drift, synthesis);
        for (const line of verdict.lines) console.error(line);
        if (!verdict.ok) process.exitCode = 1;
      }
      if (opts.json) {
        console.log(JSON.stringify(plan, null, 2));
        return;
      }
      console.log(`${plan.environment}: topology ${plan.topology}, deploy role ${plan.deployRole.name}`);
      console.log(
        formatTable([
          ["ORDER", "STACK", "REGION", "AFTER"],
          ...plan.stacks.map((s, i) => [String(i + 1), s.name, s.region, s.dependsOn.join(", ") || "-"]),
        ]),
      );
      for (const r of plan.imageRepositories)
        console.log(`image repository: ${r.name} (${r.region}, in ${r.stack})`);
      console.log(`destroy: the reverse (${plan.destroyOrder.join(" → ")})`);
    });

  ci.command("bootstrap")
    .description(
      "deploy the stayup-ci stack once, as an administrator: GitHub's OIDC provider and one deploy role per environment",
    )
    .addOption(configOption())
    .option("-o, --out <dir>", "where the synthesized assemblies are written", "cdk.out")
    .option("-y, --yes", "do not ask before creating the IAM roles (CDK's security-change approval)")
    .action(async (opts: { config: string; out: string; yes?: boolean }) => {
      const stacks = {} as Record<EnvironmentName, ResolvedStack>;
      for (const env of environmentNames) stacks[env] = await loadStack(opts.config, env);
      const first = stacks[environmentNames[0]];
      const ciSettings = requireCi(first);
      const identity = await requireCredentials(first.regions.primary.name);
      process.env.CDK_DEFAULT_ACCOUNT = identity.account;
      const outdir = path.resolve(opts.out, "ci");
      const synthesis = synthesizeCi(stacks, outdir, { compliance: true, account: identity.account });
      console.error(
        `deploying ${ciStackName(first)} (deploy roles of ${synthesis.environments.join(", ")}, trusting ${ciSettings.github.owner}/${ciSettings.github.repository}) to account ${identity.account} in ${synthesis.region} as ${identity.arn}`,
      );
      if (synthesis.environments.length > 1) {
        console.error(
          `warning: ${synthesis.environments.join(" and ")} share account ${identity.account}. Each role is limited to its own stacks and regions, but CDK's bootstrap roles are account-wide: a job that may deploy one environment can deploy or delete any stack of that account. Give each environment its account (environments.<env>.aws.account) to keep dev from prod: docs/deploy-to-aws.md`,
        );
      }
      const approval = opts.yes ? ["--require-approval", "never"] : [];
      const code = await runCdk(
        [
          "deploy",
          "--app",
          outdir,
          "--exclusively",
          synthesis.stackName,
          "--progress",
          "events",
          ...approval,
        ],
        { CDK_DEFAULT_ACCOUNT: identity.account },
      );
      if (code !== 0) throw new StayupError(`cdk deploy exited with ${code}`, "see its output above");
      const res = await new CloudFormationClient({ region: synthesis.region }).send(
        new DescribeStacksCommand({ StackName: synthesis.stackName }),
      );
      console.log(
        "set these as repository variables (Settings → Secrets and variables → Actions → Variables):",
      );
      for (const env of synthesis.environments) {
        const key = `DeployRoleArn${env[0]?.toUpperCase()}${env.slice(1)}`;
        const value = res.Stacks?.[0]?.Outputs?.find((o) => o.OutputKey === key)?.OutputValue ?? "(missing)";
        console.log(`${roleVariable(env)}=${value}`);
      }
      console.log(
        `and create the GitHub environments ${synthesis.environments.join(", ")} (Settings → Environments), deployment branches limited to ${ciSettings.github.branch}; required reviewers on ${ciSettings.github.protectedEnvironments.join(", ") || "none"}: each role trusts only jobs in its GitHub environment`,
      );
      for (const e of synthesis.elsewhere) {
        console.log(
          `${e.environment} is in account ${e.account}: run stayup ci bootstrap again with its credentials`,
        );
      }
    });
}
