import type { StackClient } from "../local/control-plane/client.ts";
import type { DrillRunner } from "../local/control-plane/drills.ts";
import type { ResolvedStack } from "../stack/index.ts";
import type { StayupError } from "../shared/errors.ts";
import { drillDefaults } from "./harness.ts";
import { assertRunsOn, concludeVerdict, type DrillModule } from "./module.ts";
import { drills, findDrill } from "./registry.ts";
import type { DrillReport } from "./report.ts";
import { saveReport } from "./report-files.ts";

/**
 * One drill run, from the CLI or the control plane alike: run, verdict agreed with the drill's
 * pass condition, report saved (`reportHtml`, else `<stateDir>/reports/`).
 */
export async function runDrillAndReport(
  drill: DrillModule,
  context: {
    client: StackClient;
    stack: ResolvedStack;
    stateDir: string;
    rate: number;
    options: Record<string, unknown>;
    onProgress?: (message: string) => void;
    reportHtml?: string;
  },
): Promise<{ report: DrillReport; files: { html: string; json: string } }> {
  const ran = await drill.run(context);
  const report = concludeVerdict(drill, ran);
  return { report, files: saveReport(report, context.stateDir, context.reportHtml) };
}

/** The drills' registry as the control plane's DrillRunner: the CLI hands it to the stack it starts. */
export const registryDrillRunner: DrillRunner = {
  available: (topology) =>
    drills
      .filter((d) => d.topologies[topology] === true)
      .map((d) => ({ name: d.name, description: d.description })),
  refusal(name, topology) {
    const drill = findDrill(name);
    if (!drill)
      return {
        status: 404,
        error: `unknown drill "${name}"`,
        hint: `drills: ${drills.map((d) => d.name).join(", ")}`,
      };
    try {
      assertRunsOn(drill, topology);
      return undefined;
    } catch (error) {
      return { status: 409, error: (error as StayupError).message, hint: (error as StayupError).hint };
    }
  },
  async run(name, context) {
    const drill = findDrill(name);
    if (!drill) throw new Error(`unknown drill "${name}"`);
    // The drill's own options at their defaults, as `stayup drill <name>` with none given.
    const options = Object.fromEntries(
      (drill.options?.() ?? []).map((o) => [o.attributeName(), o.defaultValue as unknown]),
    );
    const { report, files } = await runDrillAndReport(drill, {
      ...context,
      rate: drillDefaults.rate,
      options,
    });
    return { passed: report.verdict.passed, reportHtml: files.html };
  },
};
