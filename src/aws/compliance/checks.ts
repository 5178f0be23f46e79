import { CfnGuardValidator } from "@cdklabs/cdk-validator-cfnguard";
import { App, type CfnResource, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import type { ResolvedStack } from "../../stack/index.ts";
import type { StayupStacks } from "../app.ts";
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
 * A CDK app whose synthesis runs cdk-nag's AwsSolutions pack and cfn-guard's Control Tower rules
 * as validation plugins: an unacknowledged finding stops synthesis with a report.
 */
export function createStayupApp(options: StayupAppOptions = {}): App {
  const app = new App({
    outdir: options.outdir,
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
      new CfnGuardValidator({ controlTowerRulesEnabled: true }),
    );
  }
  return app;
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
  };
  const secondary: Record<string, CfnResource | undefined> = {
    "web-group": stacks.secondaryWeb?.web.group.node.defaultChild as CfnResource | undefined,
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
