import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import type { ResolvedStack } from "../stack/index.ts";
import { StayupError } from "../shared/errors.ts";
import { findExecutable } from "../shared/net.ts";
import { addStayupStacks } from "./app.ts";
import {
  acknowledgeFindings,
  createStayupApp,
  silenceCfnLint,
  synthesizeChecked,
} from "./compliance/checks.ts";

export interface SynthesizedStack {
  name: string;
  region: string;
  templateFile: string;
}

export interface Synthesis {
  outdir: string;
  /** In deployment order. */
  stacks: SynthesizedStack[];
  /** Acknowledged cdk-nag/cfn-guard rules that apply to these stacks. */
  acknowledged: number;
}

/**
 * Synthesizes the description's stacks with no credentials and no network. With `compliance`,
 * cdk-nag and cfn-guard run as validation plugins and any unacknowledged finding throws.
 */
export function synthesize(
  stack: ResolvedStack,
  outdir: string,
  options: { compliance?: boolean; imageTag?: string } = {},
): Synthesis {
  const app = createStayupApp({ outdir, compliance: options.compliance });
  const stacks = addStayupStacks(app, stack, path.join(outdir, "..", "aws-bundle"), {
    imageTag: options.imageTag,
  });
  const acknowledged = acknowledgeFindings(stacks, stack);
  silenceCfnLint(stacks);
  synthesizeChecked(app, stack.environment, options.compliance);
  return {
    outdir,
    acknowledged,
    stacks: stacks.ordered.map((s) => ({
      name: s.stackName,
      region: s.region,
      templateFile: path.join(outdir, s.templateFile),
    })),
  };
}

export interface LintResult {
  ok: boolean;
  output: string;
}

/** cfn-lint over the synthesized templates: ok only with 0 errors and 0 warnings. */
export async function cfnLint(templateFiles: string[]): Promise<LintResult> {
  if (!findExecutable("cfn-lint")) {
    throw new StayupError("cfn-lint was not found on PATH", "install it: pip install cfn-lint");
  }
  try {
    const { stdout } = await promisify(execFile)("cfn-lint", ["--format", "parseable", ...templateFiles]);
    return { ok: true, output: stdout };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}
