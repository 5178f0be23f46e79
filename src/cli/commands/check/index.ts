import path from "node:path";
import type { Command } from "commander";
import { synthesizeCi } from "../../../aws/ci/ci-app.ts";
import {
  failoverModelCoverage,
  formatFailoverCoverage,
  formatFailoverModel,
  modelFailover,
} from "../../../aws/failover-model.ts";
import { rendersDnsFailover } from "../../../aws/naming.ts";
import { cfnLint, type Synthesis, synthesize } from "../../../aws/synth.ts";
import { formatTable } from "../../../shared/table.ts";
import { environmentNames, loadStack, type Topology } from "../../../stack/index.ts";
import { configOption, topologyOption } from "../../options.ts";

export interface CheckOptions {
  config: string;
  topology?: Topology;
  out: string;
}

/** `stayup check`: cdk-nag, cfn-guard and cfn-lint over every environment; false (exit 1) on findings. */
export async function check(opts: CheckOptions): Promise<boolean> {
  const rows: string[][] = [["ENV", "STACKS", "CDK-NAG + CFN-GUARD", "CFN-LINT"]];
  let failed = false;
  for (const env of environmentNames) {
    const stack = await loadStack(opts.config, env, { topology: opts.topology });
    process.stderr.write(`checking ${env}: synthesis with cdk-nag and cfn-guard...\n`);
    let synthesis: Synthesis | undefined;
    let compliance: string;
    try {
      synthesis = synthesize(stack, path.resolve(opts.out, env), { compliance: true });
      compliance = `0 unacknowledged (${synthesis.acknowledged} acknowledged)`;
    } catch (error) {
      failed = true;
      compliance = "FINDINGS (report above)";
      console.error((error as Error).message);
    }
    let lint = "not run";
    if (synthesis) {
      process.stderr.write(`checking ${env}: cfn-lint...\n`);
      const result = await cfnLint(synthesis.stacks.map((s) => s.templateFile));
      lint = result.ok ? "0 errors, 0 warnings" : "FINDINGS";
      if (!result.ok) {
        failed = true;
        console.error(result.output);
      }
    }
    rows.push([env, String(synthesis?.stacks.length ?? "-"), compliance, lint]);
  }
  const prod = await loadStack(opts.config, "prod", { topology: opts.topology });
  if (prod.ci) {
    process.stderr.write("checking the CI stack: synthesis with cdk-nag and cfn-guard, cfn-lint...\n");
    const stacks = { dev: await loadStack(opts.config, "dev", { topology: opts.topology }), prod };
    try {
      const ci = synthesizeCi(stacks, path.resolve(opts.out, "ci"), { compliance: true });
      const result = await cfnLint([ci.templateFile]);
      if (!result.ok) console.error(result.output);
      failed ||= !result.ok;
      rows.push(["ci", "1", "0 unacknowledged", result.ok ? "0 errors, 0 warnings" : "FINDINGS"]);
    } catch (error) {
      failed = true;
      console.error((error as Error).message);
      rows.push(["ci", "1", "FINDINGS (report above)", "not run"]);
    }
  }
  console.log(formatTable(rows));
  if (prod.regions.secondary && prod.topology === "load-balanced" && !rendersDnsFailover(prod)) {
    console.log(
      "\nRoute 53 failover is not rendered: set aws.hostedZone (a public zone that holds dns.name) to add the dns-failover stack (failover records, health checks, alarms, failover/failback Lambdas).",
    );
  }
  console.log(`\n${formatFailoverModel(modelFailover(prod))}\n`);
  console.log(`${formatFailoverCoverage(failoverModelCoverage(prod))}\n`);
  console.log(failed ? "check: FAILED" : "check: passed");
  if (failed) process.exitCode = 1;
  return !failed;
}

export function register(program: Command): void {
  program
    .command("check")
    .description(
      "offline proof of the AWS stacks: cdk-nag, cfn-guard (Control Tower) and cfn-lint for every environment",
    )
    .addOption(configOption())
    .addOption(topologyOption())
    .option("-o, --out <dir>", "where the checked assemblies are written", "cdk.out")
    .action(async (opts: CheckOptions) => {
      await check(opts);
    });
}
