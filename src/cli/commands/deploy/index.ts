import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { formatPreflight, preflight } from "../../../aws/preflight.ts";
import { stackExists } from "../../../aws/destroy.ts";
import { requireCredentials, runCdk, stackOutputs } from "../../../aws/deploy.ts";
import { secondaryWithoutFailover } from "../../../aws/naming.ts";
import { StayupError } from "../../../shared/errors.ts";
import { loadStack } from "../../../stack/index.ts";
import { cdkSteps, withDependencies } from "../../../aws/plan.ts";
import { assemblyDir, synthesizeForCdk } from "../../cdk.ts";
import {
  configOption,
  type DescriptionOptions,
  envOption,
  imageTagOption,
  topologyOption,
} from "../../options.ts";

/**
 * `stayup deploy`: the stacks to AWS one at a time in the synthesized app's dependency order (the
 * order `stayup ci plan` prints), then their outputs. `stack` limits it to one stack and what it
 * depends on (the deploy workflow creates the image repository this way before pushing to it).
 */
export async function deploy(opts: DescriptionOptions & { stack?: string }): Promise<void> {
  const stack = await loadStack(opts.config, opts.env, { topology: opts.topology });
  const identity = await requireCredentials(stack.regions.primary.name, undefined, stack);
  // A secondary region nothing could switch to is refused, not deployed and paid for.
  const unswitchable = secondaryWithoutFailover(stack);
  if (unswitchable) throw new StayupError(`${unswitchable.problem}; nothing was created`, unswitchable.fix);
  console.error(
    `deploying ${stack.name} ${opts.env} to account ${identity.account} in ${stack.regions.primary.name} as ${identity.arn}`,
  );
  const env = { CDK_DEFAULT_ACCOUNT: identity.account };
  const order = await synthesizeForCdk(opts, env);
  const stacks = opts.stack ? withDependencies(order, opts.stack) : order;
  // Before anything changes: what the account lacks for these stacks, in one list.
  const problems = await preflight(
    stack,
    identity.account,
    await Promise.all(
      stacks.map(async (s) => ({
        name: s.name,
        region: s.region,
        template: JSON.parse(readFileSync(s.templateFile, "utf8")),
        deployed: await stackExists(s.name, s.region),
      })),
    ),
  );
  if (problems.length > 0) {
    throw new StayupError(formatPreflight(problems), "run the fixes above, then stayup deploy again");
  }
  for (const args of cdkSteps(assemblyDir(opts), "deploy", stacks)) {
    const code = await runCdk(args, env);
    if (code !== 0) throw new StayupError(`cdk deploy exited with ${code}`, "see its output above");
  }
  if (!opts.stack) for (const o of await stackOutputs(stack)) console.log(`${o.key}: ${o.value}`);
}

export function register(program: Command): void {
  program
    .command("deploy")
    .description(
      "deploy the stacks to AWS one by one in the synthesized app's dependency order: network (then access, the SSH bastion, only with aws.bastion set), then by topology: load-balanced database → web (→ the secondary region's network, database, web → dns-failover); single-instance single-instance; ecs database → repository → cluster → service",
    )
    .addOption(configOption())
    .addOption(envOption())
    .addOption(topologyOption())
    .option("--stack <name>", "deploy only this stack and the stacks it depends on")
    .addOption(imageTagOption())
    .action(deploy);
}
