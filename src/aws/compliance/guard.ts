import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { CfnGuardValidator } from "@cdklabs/cdk-validator-cfnguard";
import type {
  IPolicyValidationContextBeta1,
  IPolicyValidationPluginBeta1,
  PolicyValidationPluginReportBeta1,
} from "aws-cdk-lib";

const resourceType = /AWS::[A-Za-z0-9]+::[A-Za-z0-9]+/g;

let ruleFiles: { file: string; types: Set<string> }[] | undefined;

/** Every Control Tower rule file the plugin ships, with the resource types it names. */
export function controlTowerRules(): { file: string; types: Set<string> }[] {
  if (ruleFiles) return ruleFiles;
  const pkg = createRequire(import.meta.url).resolve("@cdklabs/cdk-validator-cfnguard/package.json");
  const root = path.join(path.dirname(pkg), "rules", "control-tower", "cfn-guard");
  ruleFiles = readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => {
      const file = path.join(d.parentPath, d.name);
      return { file, types: new Set(readFileSync(file, "utf8").match(resourceType) ?? []) };
    })
    .sort((a, b) => a.file.localeCompare(b.file));
  return ruleFiles;
}

/** The rule files that can apply to templates holding `types`: those naming one of them (or none). */
export function controlTowerRulesFor(types: Set<string>): string[] {
  return controlTowerRules()
    .filter((r) => r.types.size === 0 || [...r.types].some((t) => types.has(t)))
    .map((r) => r.file);
}

/**
 * cfn-guard's Control Tower rules (@cdklabs/cdk-validator-cfnguard), given only the rule files that
 * name a resource type the templates hold. Every rule selects its resources by type
 * (`Resources.*[ Type == "AWS::…" ]`) and skips when there are none, so the rules left out could
 * only answer "not applicable": the findings are the same, for 40% of cfn-guard's CPU (the
 * plugin hands it all 237 files, and it evaluates each against every template; docs/benchmarks.md).
 * Same plugin name, so acknowledgments read `cdk-validator-cfnguard::rule` as before.
 */
export class ControlTowerGuard implements IPolicyValidationPluginBeta1 {
  readonly name: string;
  readonly version?: string;
  readonly ruleIds?: string[];

  constructor() {
    const all = new CfnGuardValidator({ controlTowerRulesEnabled: true });
    this.name = all.name;
    this.version = all.version;
    this.ruleIds = all.ruleIds;
  }

  validate(context: IPolicyValidationContextBeta1): PolicyValidationPluginReportBeta1 {
    const types = new Set<string>();
    for (const file of context.templatePaths) {
      const template = JSON.parse(readFileSync(file, "utf8")) as {
        Resources?: Record<string, { Type?: string }>;
      };
      for (const r of Object.values(template.Resources ?? {})) if (r.Type) types.add(r.Type);
    }
    const rules = controlTowerRulesFor(types);
    if (rules.length === 0) return { success: true, violations: [] };
    return new CfnGuardValidator({ controlTowerRulesEnabled: false, rules }).validate(context);
  }
}
