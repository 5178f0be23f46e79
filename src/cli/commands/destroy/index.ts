import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { ECSClient } from "@aws-sdk/client-ecs";
import { requireCredentials, runCdk } from "../../../aws/deploy.ts";
import {
  deleteOutsideLogGroups,
  findRemaining,
  formatLeftovers,
  liftDeletionProtection,
  otherTopologyStacks,
  priceLeftovers,
  retainedAfterDestroy,
  stackExists,
  topologyStackKinds,
} from "../../../aws/destroy.ts";
import { prepareEcsTeardown } from "../../../aws/ecs/destroy.ts";
import { resourcePrefix } from "../../../aws/naming.ts";
import { StayupError } from "../../../shared/errors.ts";
import { loadStack } from "../../../stack/index.ts";
import { cdkSteps } from "../../../aws/plan.ts";
import { assemblyDir, synthesizeForCdk } from "../../cdk.ts";
import { configOption, type DescriptionOptions, envOption, topologyOption } from "../../options.ts";

export const FORCE_FLAG = "--force-delete-protected";

/**
 * `stayup destroy`: deletes the stacks from AWS one at a time in reverse dependency order. An
 * environment with deletion protection is refused before anything is touched, unless
 * --force-delete-protected: then every protection that would make the deletion fail or hang is
 * lifted first. Ends with what is left in the account and what it costs per month.
 */
export async function destroy(opts: DescriptionOptions & { forceDeleteProtected?: boolean }): Promise<void> {
  const stack = await loadStack(opts.config, opts.env, { topology: opts.topology });
  if (stack.deletionProtection && !opts.forceDeleteProtected) {
    throw new StayupError(
      `${opts.env} has deletion protection: nothing was touched`,
      `to delete it anyway (its stacks' termination protection, the load balancers' deletion protection and the instances' scale-in protection are lifted first): stayup destroy --env ${opts.env} ${FORCE_FLAG}`,
    );
  }
  const identity = await requireCredentials(
    stack.regions.primary.name,
    "credentials are missing, so nothing was looked at or deleted: whether anything is deployed is unknown",
    stack,
  );
  const env = { CDK_DEFAULT_ACCOUNT: identity.account };
  const order = await synthesizeForCdk(opts, env);
  // Another topology's stacks import the shared ones (network, database): those stay while they exist.
  const regions = [...new Set(order.map((s) => s.region))];
  const others = await otherTopologyStacks(resourcePrefix(stack), stack.topology, regions);
  const own = new Set(topologyStackKinds[stack.topology].map((k) => `${resourcePrefix(stack)}-${k}`));
  const toDelete = others.length > 0 ? order.filter((s) => own.has(s.name)) : order;
  if (others.length > 0) {
    console.error(
      `other topologies' stacks exist: ${others.map((o) => `${o.stackName} (${o.topology}, ${o.region})`).join(", ")}; the shared stacks (${order
        .filter((s) => !own.has(s.name))
        .map((s) => s.name)
        .join(
          ", ",
        )}) stay until they are destroyed too: stayup destroy --env ${opts.env} --topology ${others[0]?.topology}`,
    );
  }
  if (opts.forceDeleteProtected) {
    await liftDeletionProtection(
      toDelete.map((s) => ({ stackName: s.name, region: s.region })),
      undefined,
      (line) => console.error(line),
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
  for (const args of cdkSteps(assemblyDir(opts), "destroy", toDelete)) {
    const code = await runCdk(args, env);
    if (code !== 0) throw new StayupError(`cdk destroy exited with ${code}`, "see its output above");
  }
  const retained = retainedAfterDestroy(
    toDelete.map((s) => ({
      stackName: s.name,
      region: s.region,
      template: JSON.parse(readFileSync(s.templateFile, "utf8")),
    })),
  );
  if (!stack.deletionProtection) {
    // dev leaves nothing billable: what services logged outside CloudFormation goes too.
    for (const name of await deleteOutsideLogGroups(retained)) console.error(`deleted log group ${name}`);
  }
  const remainingStacks = [];
  for (const s of toDelete) if (await stackExists(s.name, s.region)) remainingStacks.push(s.name);
  if (remainingStacks.length > 0) console.log(`stacks still there: ${remainingStacks.join(", ")}`);
  for (const line of formatLeftovers(priceLeftovers(await findRemaining(retained)))) console.log(line);
}

export function register(program: Command): void {
  program
    .command("destroy")
    .description("delete the stacks from AWS one by one in reverse dependency order")
    .addOption(configOption())
    .addOption(envOption())
    .addOption(topologyOption())
    .option(
      FORCE_FLAG,
      "delete an environment with deletion protection (prod): lifts termination, load-balancer and scale-in protection first",
    )
    .action(destroy);
}
