import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Command, Option } from "commander";
import { readTemplates } from "../../../aws/cost/estimate.ts";
import { awsDiagram, localDiagram } from "../../../aws/diagram.ts";
import { synthesize } from "../../../aws/synth.ts";
import { loadStack, type ResolvedStack } from "../../../stack/index.ts";
import { configOption, type DescriptionOptions, envOption, topologyOption } from "../../options.ts";

/** The AWS architecture of the synthesized stacks, as Mermaid. */
export function awsDiagramOf(stack: ResolvedStack): string {
  const outdir = mkdtempSync(path.join(os.tmpdir(), "stayup-diagram-"));
  try {
    const synthesis = synthesize(stack, path.join(outdir, stack.environment));
    return awsDiagram(stack, readTemplates(synthesis.stacks));
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

export function register(program: Command): void {
  program
    .command("diagram")
    .description("the architecture as a Mermaid flowchart (GitHub renders it), on AWS or locally")
    .addOption(configOption())
    .addOption(envOption())
    .addOption(topologyOption())
    .addOption(new Option("--target <where>", "what to draw").choices(["aws", "local"]).default("aws"))
    .action(async (opts: DescriptionOptions & { target: "aws" | "local" }) => {
      const stack = await loadStack(opts.config, opts.env, { topology: opts.topology });
      process.stdout.write(opts.target === "local" ? localDiagram(stack) : awsDiagramOf(stack));
    });
}
