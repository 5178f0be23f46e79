import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { type CostEstimate, estimateCost, readTemplates } from "../../../aws/cost/estimate.ts";
import { steadyContainerInstances } from "../../../aws/cost/ecs-capacity.ts";
import { tradeOffs } from "../../../aws/cost/trade-offs.ts";
import { containerInstanceGroupName } from "../../../aws/ecs/cluster.ts";
import { synthesize } from "../../../aws/synth.ts";
import { formatTable } from "../../../shared/table.ts";
import { loadStack, type ResolvedStack } from "../../../stack/index.ts";
import { configOption, type DescriptionOptions, envOption, topologyOption } from "../../options.ts";

/** Synthesizes the description's stacks (no credentials) and prices them. */
export function costOf(stack: ResolvedStack, outdir: string): CostEstimate {
  const synthesis = synthesize(stack, path.join(outdir, stack.environment));
  // The container instances' group has no desired capacity (managed scaling owns it): from the
  // placement and the cluster's target, as ECS would settle.
  const instanceCounts =
    stack.topology === "ecs" ? { [containerInstanceGroupName(stack)]: steadyContainerInstances(stack) } : {};
  return estimateCost(readTemplates(synthesis.stacks), { instanceCounts });
}

export function formatCost(stack: ResolvedStack, estimate: CostEstimate): string {
  const lines: string[] = [];
  const byStack = new Map<string, number>();
  for (const i of estimate.items) byStack.set(i.stack, (byStack.get(i.stack) ?? 0) + i.usdPerMonth);
  lines.push(
    formatTable([
      ["STACK", "REGION", "RESOURCE", "WHAT", "USD/MONTH"],
      ...estimate.items.map((i) => [i.stack, i.region, i.resource, i.what, i.usdPerMonth.toFixed(2)]),
    ]),
    "",
    formatTable([
      ["STACK", "USD/MONTH"],
      ...[...byStack].map(([s, usd]) => [s, usd.toFixed(2)]),
      ["total", estimate.total.toFixed(2)],
    ]),
  );
  if (!estimate.complete) {
    lines.push("", `NOT PRICED (${estimate.unpriced.length}; the total leaves them out):`);
    for (const u of estimate.unpriced)
      lines.push(`  ${u.stack} ${u.resource} (${u.type}, ${u.region}): ${u.reason}`);
  }
  const a = estimate.assumptions;
  lines.push(
    "",
    `Assumed: ${a.hoursPerMonth} h a month, ${a.natGbPerMonth} GB through each NAT gateway, ${a.albLcu} LCU per load balancer, ${a.logGbPerMonth} GB into each log group, ${a.s3GbPerMonth} GB per bucket; no free tier, no data transfer out.`,
    "",
    "TRADE-OFFS",
    formatTable([
      ["QUESTION", "USD/MONTH", "ANSWER"],
      ...tradeOffs(stack, estimate).map((t) => [
        t.question,
        t.usdPerMonth === null ? "-" : (t.usdPerMonth > 0 ? "+" : "") + t.usdPerMonth.toFixed(2),
        t.answer,
      ]),
    ]),
    "",
    "Prices: src/aws/cost/prices.ts (source and date per entry); on-demand, USD.",
  );
  return lines.join("\n");
}

export function register(program: Command): void {
  program
    .command("cost")
    .description("monthly on-demand cost of the synthesized AWS stacks, per stack and per resource")
    .addOption(configOption())
    .addOption(envOption())
    .addOption(topologyOption())
    .option("--json", "as JSON: total (USD per month), items, unpriced, assumptions, prices")
    .action(async (opts: DescriptionOptions & { json?: boolean }) => {
      const stack = await loadStack(opts.config, opts.env, { topology: opts.topology });
      const outdir = mkdtempSync(path.join(os.tmpdir(), "stayup-cost-"));
      let estimate: CostEstimate;
      try {
        estimate = costOf(stack, outdir);
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
      if (opts.json)
        console.log(JSON.stringify({ ...estimate, tradeOffs: tradeOffs(stack, estimate) }, null, 2));
      else console.log(formatCost(stack, estimate));
      // An incomplete total is not an answer: the unpriced resources are named above.
      if (!estimate.complete) process.exitCode = 1;
    });
}
