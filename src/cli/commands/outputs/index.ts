import type { Command } from "commander";
import { requireCredentials, stackOutputs } from "../../../aws/deploy.ts";
import { loadStack } from "../../../stack/index.ts";
import { configOption, type DescriptionOptions, envOption } from "../../options.ts";

/** `stayup outputs`: the deployed stack's outputs (load-balancer URL, public IP). */
export async function outputs(opts: DescriptionOptions & { json?: boolean }): Promise<void> {
  const stack = await loadStack(opts.config, opts.env);
  await requireCredentials(
    stack.regions.primary.name,
    "credentials are missing, so nothing could be read: whether anything is deployed is unknown",
    stack,
  );
  const found = await stackOutputs(stack);
  if (opts.json) console.log(JSON.stringify(found, null, 2));
  else for (const o of found) console.log(`${o.key}: ${o.value}`);
}

export function register(program: Command): void {
  program
    .command("outputs")
    .description("print the deployed stack's outputs (load-balancer URL, public IP)")
    .addOption(configOption())
    .addOption(envOption())
    .option("--json", "as JSON")
    .action(outputs);
}
