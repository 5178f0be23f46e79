import path from "node:path";
import { fileURLToPath } from "node:url";
import { runCdk } from "../aws/deploy.ts";
import { deploymentOrder, type PlannedStack } from "../aws/plan.ts";
import { StayupError } from "../shared/errors.ts";
import type { DescriptionOptions } from "./options.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The CDK CLI's arguments for the stayup app, with the description, environment and topology chosen. */
export function cdkArgs(command: string, opts: DescriptionOptions, extra: string[] = []): string[] {
  return [
    command,
    "--all",
    "--app",
    `node ${path.join(repoRoot, "bin/cdk-app.mjs")}`,
    "--output",
    assemblyDir(opts),
    "-c",
    `env=${opts.env}`,
    "-c",
    `config=${path.resolve(opts.config)}`,
    ...(opts.topology ? ["-c", `topology=${opts.topology}`] : []),
    ...(opts.imageTag ? ["-c", `imageTag=${opts.imageTag}`] : []),
    ...extra,
  ];
}

/**
 * Where the CDK CLI writes an environment's assembly (deploy and destroy run from it): beside the
 * description, in the project's folder (not inside stayup's package when it is a dependency).
 */
export const assemblyDir = (opts: Pick<DescriptionOptions, "env" | "config">) =>
  path.join(path.dirname(path.resolve(opts.config)), "cdk.out", opts.env);

/** Synthesizes the app with the CDK CLI (the templates it deploys) and reads its dependency order. */
export async function synthesizeForCdk(
  opts: DescriptionOptions,
  env: Record<string, string>,
): Promise<PlannedStack[]> {
  const code = await runCdk(cdkArgs("synth", opts, ["--quiet"]), env);
  if (code !== 0) throw new StayupError(`cdk synth exited with ${code}`, "see its output above");
  return deploymentOrder(assemblyDir(opts));
}
