import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { App, type CfnResource, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { StayupError } from "../../shared/errors.ts";
import type { ResolvedStack } from "../../stack/index.ts";
import type { StayupStacks } from "../stacks.ts";
import { ControlTowerGuard } from "./guard.ts";
import { LifecycleRulesValidator } from "./lifecycle-rules.ts";
import {
  acknowledgementId,
  acknowledgements,
  cfnLintExceptions,
  type StackKind,
} from "./acknowledgements.ts";

export interface StayupAppOptions {
  outdir?: string;
  /** Run cdk-nag (AwsSolutions) and cfn-guard (Control Tower rules) at synthesis. */
  compliance?: boolean;
}

/**
 * A CDK app whose synthesis runs cdk-nag's AwsSolutions pack, cfn-guard's Control Tower rules and
 * stayup's lifecycle rules (lifecycle-rules.ts) as validation plugins: an unacknowledged finding
 * stops synthesis with a report.
 */
export function createStayupApp(options: StayupAppOptions = {}): App {
  const app = new App({
    outdir: options.outdir,
    // CDK's built-in CloudFormation validation (a wasm rules engine, on by default since CDK 2.26x)
    // took 10 of a synthesis's 11 s of CPU (docs/benchmarks.md), at every synth, cost, diagram and
    // deploy. stayup's templates are linted by cfn-lint instead, a superset: `stayup check` runs it
    // over every environment's templates, and CI over every topology's. CDK_VALIDATION=true turns
    // it back on.
    builtinCloudFormationValidation: process.env.CDK_VALIDATION === "true",
    // Stacks deploy in order and reference each other's exports: keep the producer protected.
    context: {
      "@aws-cdk/core:defaultCrossStackReferences": "strong",
      // What the CDK CLI sets: in-process synthesis must produce the very templates it deploys.
      "aws:cdk:enable-path-metadata": true,
      "aws:cdk:enable-asset-metadata": true,
      "aws:cdk:version-reporting": true,
    },
  });
  if (options.compliance) {
    Validations.of(app).addPlugins(
      new AwsSolutionsChecks(app, { verbose: true }),
      // cfn-guard with the Control Tower rules that can apply to the templates (guard.ts).
      new ControlTowerGuard(),
      new LifecycleRulesValidator(),
    );
  }
  return app;
}

/** Where CDK writes the validation plugins' findings, in the assembly directory. */
export const validationReportFile = "validation-report.json";

export interface Finding {
  plugin: string;
  rule: string;
  /** Construct paths (or logical ids) of the resources it concerns. */
  resources: string[];
}

interface ValidationReport {
  pluginReports?: {
    pluginName: string;
    violations?: {
      ruleName: string;
      violatingConstructs?: { constructPath?: string; resourceLogicalId?: string }[];
    }[];
  }[];
}

/**
 * The cdk-nag and cfn-guard findings no acknowledgment covers, read from the report synthesis
 * wrote. The report's `conclusion` cannot be trusted for this: once one finding of a plugin is
 * acknowledged, CDK recomputes the plugin's success from the severity of what remains, and
 * cfn-guard's findings carry no severity (the report still prints them as errors), so further
 * guard findings are listed under "success" and do not stop synthesis. Every violation left in
 * the report is unacknowledged (acknowledged ones are moved to `suppressedViolations`).
 */
export function unacknowledgedFindings(outdir: string): Finding[] {
  const file = path.join(outdir, validationReportFile);
  if (!existsSync(file))
    throw new StayupError(
      `no ${validationReportFile} in ${outdir}: cdk-nag and cfn-guard did not report, so nothing is proven`,
      "synthesize with compliance on (createStayupApp({ compliance: true }))",
    );
  const report = JSON.parse(readFileSync(file, "utf8")) as ValidationReport;
  return (report.pluginReports ?? []).flatMap((p) =>
    (p.violations ?? []).map((v) => ({
      plugin: p.pluginName,
      rule: v.ruleName,
      resources: (v.violatingConstructs ?? []).map((c) => c.constructPath || c.resourceLogicalId || "?"),
    })),
  );
}

const fixHint =
  "fix the findings above, or acknowledge them with a reason in src/aws/compliance/acknowledgements.ts";

/**
 * Synthesizes an app made by createStayupApp; with compliance on, throws when cdk-nag or cfn-guard
 * report any finding that no acknowledgment covers (`what` names the app in the error).
 */
export function synthesizeChecked(app: App, what: string, compliance: boolean | undefined): void {
  try {
    app.synth();
  } catch (error) {
    throw new StayupError(`synthesis of ${what} failed: ${(error as Error).message}`, fixHint);
  }
  if (!compliance) return;
  const findings = unacknowledgedFindings(app.outdir);
  if (findings.length > 0)
    throw new StayupError(
      [
        `synthesis of ${what} failed: ${findings.length} unacknowledged cdk-nag/cfn-guard finding(s):`,
        ...findings.map((f) => `  ${f.plugin} ${f.rule}: ${f.resources.join(", ")}`),
        `(report: ${path.join(app.outdir, validationReportFile)})`,
      ].join("\n"),
      fixHint,
    );
}

const secondaryOf: Partial<Record<StackKind, StackKind>> = {
  network: "secondaryNetwork",
  database: "secondaryDatabase",
  web: "secondaryWeb",
};

/**
 * Records the acknowledged findings, each with its reason, on the stacks they concern. Returns how
 * many acknowledgments apply to this description's stacks.
 */
export function acknowledgeFindings(stacks: StayupStacks, description: ResolvedStack): number {
  let applied = 0;
  for (const ack of acknowledgements) {
    if (ack.when && !ack.when(description)) continue;
    let used = false;
    for (const kind of ack.stacks) {
      // The secondary region's stacks are built from the same constructs: same findings, same reasons.
      const counterpart = secondaryOf[kind];
      for (const stack of [stacks[kind], counterpart ? stacks[counterpart] : undefined]) {
        if (!stack) continue;
        Validations.of(stack).acknowledge({ id: acknowledgementId(ack, description), reason: ack.reason });
        used = true;
      }
    }
    if (used) applied++;
  }
  return applied;
}

/** Applies the per-resource cfn-lint exceptions (see acknowledgements.ts). */
export function silenceCfnLint(stacks: StayupStacks): void {
  const resources: Record<string, CfnResource | undefined> = {
    "web-group": stacks.web?.web.group.node.defaultChild as CfnResource | undefined,
    "container-instance-group": stacks.cluster?.group.node.defaultChild as CfnResource | undefined,
  };
  const secondary: Record<string, CfnResource | undefined> = {
    "web-group": stacks.secondaryWeb?.web.group.node.defaultChild as CfnResource | undefined,
    "container-instance-group": undefined,
  };
  for (const exception of cfnLintExceptions) {
    for (const resource of [resources[exception.resource], secondary[exception.resource]]) {
      if (!resource) continue;
      const existing = (resource.getMetadata("cfn-lint") as { config?: { ignore_checks?: string[] } }) ?? {};
      const ignore = [...(existing.config?.ignore_checks ?? []), exception.rule];
      resource.addMetadata("cfn-lint", { config: { ignore_checks: ignore } });
    }
  }
}
