import { readFileSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { ciAccounts, synthesizeCi } from "../../../aws/ci/ci-app.ts";
import {
  failoverModelCoverage,
  formatFailoverCoverage,
  formatFailoverModel,
  formatModelAssumptions,
  formatRegionBudgets,
  modelFailover,
} from "../../../aws/failover-model.ts";
import {
  type CfnTemplate,
  type CheckedTemplate,
  checkLifecycle,
  formatViolations,
  type LifecycleViolation,
  lifecycleRules,
  nameSharedByTopologies,
} from "../../../aws/compliance/lifecycle-rules.ts";
import { imageTagPrefix } from "../../../aws/ecs/repository.ts";
import { secondaryWithoutFailover } from "../../../aws/naming.ts";
import { cfnLint, type Synthesis, synthesize } from "../../../aws/synth.ts";
import { formatTable } from "../../../shared/table.ts";
import {
  environmentNames,
  loadStack,
  StackValidationError,
  type EnvironmentName,
  type Topology,
  topologies,
} from "../../../stack/index.ts";
import { configOption, topologyOption } from "../../options.ts";

export interface CheckOptions {
  config: string;
  topology?: Topology;
  out: string;
}

/** A synthesis's templates, as the lifecycle rules read them. */
const checkedTemplates = (synthesis: Synthesis): CheckedTemplate[] =>
  synthesis.stacks.map((s) => ({
    stack: s.name,
    region: s.region,
    templatePath: s.templateFile,
    template: JSON.parse(readFileSync(s.templateFile, "utf8")) as CfnTemplate,
  }));

/**
 * The rule across topologies: every topology of the environment synthesized (offline, no
 * compliance plugins), and no fixed physical name claimed by two of them in different stacks.
 * `checked` is the environment's synthesis already made (with the plugins) for its own topology:
 * its templates are used as they are rather than synthesized again (names do not depend on the
 * plugins, which only read the templates, nor on the image tag).
 */
async function checkTopologySwitch(
  config: string,
  env: EnvironmentName,
  out: string,
  checked: { topology: Topology; templates: CheckedTemplate[] },
): Promise<LifecycleViolation[]> {
  const syntheses = [];
  for (const topology of topologies) {
    if (topology === checked.topology) {
      syntheses.push(checked);
      continue;
    }
    let stack: Awaited<ReturnType<typeof loadStack>>;
    try {
      stack = await loadStack(config, env, { topology });
    } catch (error) {
      // A topology the description cannot take (an ECS task that fits no instance type...) is
      // never switched to: nothing of it can clash.
      if (!(error instanceof StackValidationError)) throw error;
      process.stderr.write(
        `checking ${env}: topology ${topology} skipped (the description does not validate for it)\n`,
      );
      continue;
    }
    // Names do not depend on the image: any well-formed tag will do (no git checkout needed).
    const synthesis = synthesize(stack, path.resolve(out, `${env}-${topology}`), {
      imageTag: `${imageTagPrefix(stack)}0000000`,
    });
    syntheses.push({ topology, templates: checkedTemplates(synthesis) });
  }
  return nameSharedByTopologies.check(syntheses);
}

/** A row of the table whose CFN-LINT column waits for the one cfn-lint run, and its templates. */
export interface LintTarget {
  row: string[];
  templateFiles: string[];
}

/**
 * One cfn-lint process over every row's templates (most of a cfn-lint run is its own start), each
 * finding given back to the row whose template it names. False on any finding.
 */
export async function lintAll(targets: LintTarget[]): Promise<boolean> {
  const files = targets.flatMap((t) => t.templateFiles);
  if (files.length === 0) return true;
  process.stderr.write(`checking: cfn-lint over the ${files.length} templates...\n`);
  const result = await cfnLint(files);
  // Parseable output: one finding a line, starting with the template's path as given.
  const lines = result.output.split("\n");
  const names = (templateFiles: string[]) =>
    lines.some((l) => templateFiles.some((f) => l.startsWith(`${f}:`)));
  // A failure that names no template (cfn-lint itself failed) counts against every row.
  const unattributed = !result.ok && !names(files);
  for (const target of targets)
    target.row[3] = unattributed || names(target.templateFiles) ? "FINDINGS" : "0 errors, 0 warnings";
  if (!result.ok) console.error(result.output);
  return result.ok;
}

/**
 * `stayup check`: cdk-nag, cfn-guard, stayup's lifecycle rules and cfn-lint over every environment,
 * and the lifecycle rule across topologies; false (exit 1) on findings.
 */
export async function check(opts: CheckOptions): Promise<boolean> {
  const rows: string[][] = [["ENV", "STACKS", "CDK-NAG + CFN-GUARD", "CFN-LINT", "LIFECYCLE"]];
  let failed = false;
  const lintTargets: LintTarget[] = [];
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
    // The lifecycle rules ran in the synthesis (a validation plugin); the topology switch needs
    // every topology's templates.
    let lifecycle = "not run";
    if (synthesis) {
      process.stderr.write(
        `checking ${env}: lifecycle rules, and names across the ${topologies.length} topologies...\n`,
      );
      const templates = checkedTemplates(synthesis);
      const violations = [
        ...checkLifecycle(templates),
        ...(await checkTopologySwitch(opts.config, env, path.resolve(opts.out, "topologies"), {
          topology: stack.topology,
          templates,
        })),
      ];
      lifecycle = violations.length === 0 ? `0 violations (${lifecycleRules.length + 1} rules)` : "FINDINGS";
      if (violations.length > 0) {
        failed = true;
        console.error(`lifecycle rules (docs/aws-lifecycle.md):\n${formatViolations(violations)}`);
      }
    }
    const row = [env, String(synthesis?.stacks.length ?? "-"), compliance, "not run", lifecycle];
    rows.push(row);
    if (synthesis) lintTargets.push({ row, templateFiles: synthesis.stacks.map((s) => s.templateFile) });
  }
  const prod = await loadStack(opts.config, "prod", { topology: opts.topology });
  if (prod.ci) {
    process.stderr.write("checking the CI stack: synthesis with cdk-nag and cfn-guard...\n");
    const stacks = { dev: await loadStack(opts.config, "dev", { topology: opts.topology }), prod };
    // One CI stack per account the description names (each holds that account's roles).
    for (const account of ciAccounts(stacks)) {
      const label = account ? `ci ${account}` : "ci";
      try {
        const ci = synthesizeCi(stacks, path.resolve(opts.out, account ? `ci-${account}` : "ci"), {
          compliance: true,
          account,
        });
        const row = [label, "1", "0 unacknowledged", "not run", "-"];
        rows.push(row);
        lintTargets.push({ row, templateFiles: [ci.templateFile] });
      } catch (error) {
        failed = true;
        console.error((error as Error).message);
        rows.push([label, "1", "FINDINGS (report above)", "not run", "-"]);
      }
    }
  }
  if (!(await lintAll(lintTargets))) failed = true;
  console.log(formatTable(rows));
  const unswitchable = secondaryWithoutFailover(prod);
  if (unswitchable) console.log(`\n${unswitchable.problem}\n  fix: ${unswitchable.fix}`);
  console.log(`\n${formatFailoverModel(modelFailover(prod))}\n`);
  const budgets = formatRegionBudgets(prod);
  if (budgets) console.log(`${budgets}\n`);
  console.log(`${formatModelAssumptions()}\n`);
  console.log(`${formatFailoverCoverage(failoverModelCoverage(prod))}\n`);
  console.log(failed ? "check: FAILED" : "check: passed");
  if (failed) process.exitCode = 1;
  return !failed;
}

export function register(program: Command): void {
  program
    .command("check")
    .description(
      "offline proof of the AWS stacks: cdk-nag, cfn-guard (Control Tower), stayup's lifecycle rules and cfn-lint for every environment",
    )
    .addOption(configOption())
    .addOption(topologyOption())
    .option("-o, --out <dir>", "where the checked assemblies are written", "cdk.out")
    .action(async (opts: CheckOptions) => {
      await check(opts);
    });
}
