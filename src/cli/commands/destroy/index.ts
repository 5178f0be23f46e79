import type { Command } from "commander";
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { ECSClient } from "@aws-sdk/client-ecs";
import { requireCredentials, runCdk } from "../../../aws/deploy.ts";
import { prepareEcsTeardown } from "../../../aws/ecs/destroy.ts";
import { StayupError } from "../../../shared/errors.ts";
import { loadStack } from "../../../stack/index.ts";
import { cdkSteps } from "../../../aws/plan.ts";
import { assemblyDir, synthesizeForCdk } from "../../cdk.ts";
import { configOption, type DescriptionOptions, envOption, topologyOption } from "../../options.ts";

/** `stayup destroy`: deletes the stacks from AWS one at a time in reverse dependency order. */
export async function destroy(opts: DescriptionOptions): Promise<void> {
  const stack = await loadStack(opts.config, opts.env, { topology: opts.topology });
  const identity = await requireCredentials(stack.regions.primary.name);
  if (stack.deletionProtection) {
    console.error(
      `${opts.env} has deletion protection: turn deletionProtection off for it in the description and deploy first`,
    );
  }
  if (stack.topology === "ecs") {
    // Seed 004's teardown order: the service at 0 tasks and the container instances' scale-in
    // protection cleared, or deleting the group waits forever on protected instances.
    const region = stack.regions.primary.name;
    await prepareEcsTeardown(
      stack,
      { ecs: new ECSClient({ region }), autoScaling: new AutoScalingClient({ region }) },
      { log: (line) => console.error(line) },
    );
  }
  const env = { CDK_DEFAULT_ACCOUNT: identity.account };
  const order = await synthesizeForCdk(opts, env);
  for (const args of cdkSteps(assemblyDir(opts), "destroy", order)) {
    const code = await runCdk(args, env);
    if (code !== 0) throw new StayupError(`cdk destroy exited with ${code}`, "see its output above");
  }
}

export function register(program: Command): void {
  program
    .command("destroy")
    .description("delete the stacks from AWS one by one in reverse dependency order")
    .addOption(configOption())
    .addOption(envOption())
    .addOption(topologyOption())
    .action(destroy);
}
