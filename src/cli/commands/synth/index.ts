import path from "node:path";
import { type Command, Option } from "commander";
import { synthesize } from "../../../aws/synth.ts";
import { formatTable } from "../../../shared/table.ts";
import { type EnvironmentName, environmentNames, loadStack, type Topology } from "../../../stack/index.ts";
import { configOption, imageTagOption, topologyOption } from "../../options.ts";

export interface SynthOptions {
  config: string;
  env: EnvironmentName | "all";
  topology?: Topology;
  out: string;
  imageTag?: string;
}

/** `stayup synth`: CloudFormation templates for one or every environment; needs no credentials. */
export async function synth(opts: SynthOptions): Promise<void> {
  const envs = opts.env === "all" ? environmentNames : [opts.env];
  for (const env of envs) {
    const stack = await loadStack(opts.config, env, { topology: opts.topology });
    const result = synthesize(stack, path.resolve(opts.out, env), { imageTag: opts.imageTag });
    console.log(`${env}: ${result.stacks.length} stacks in deployment order`);
    console.log(
      formatTable([
        ["STACK", "REGION", "TEMPLATE"],
        ...result.stacks.map((s) => [s.name, s.region, path.relative(process.cwd(), s.templateFile)]),
      ]),
    );
  }
}

export function register(program: Command): void {
  program
    .command("synth")
    .description("render the stack description as CloudFormation (AWS CDK); needs no credentials")
    .addOption(configOption())
    .addOption(
      new Option("-e, --env <environment>", "environment")
        .choices([...environmentNames, "all"])
        .default("all"),
    )
    .addOption(topologyOption())
    .option("-o, --out <dir>", "output directory (one assembly per environment)", "cdk.out")
    // Outside a git checkout (a project that installed stayup) the ecs topology's tag is given here.
    .addOption(imageTagOption())
    .action(synth);
}
