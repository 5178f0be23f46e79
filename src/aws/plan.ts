import { readFileSync } from "node:fs";
import path from "node:path";
import { StayupError } from "../shared/errors.ts";

/**
 * The order stacks deploy in, read from a synthesized cloud assembly: the CDK app's own
 * dependencies decide it. `stayup deploy`, `stayup destroy` (its reverse) and `stayup ci plan` all
 * read it here, so no other order exists to drift (the GitHub workflows call these commands).
 */

export interface PlannedStack {
  name: string;
  region: string;
  /** Stacks this one deploys after (the assembly's stack dependencies). */
  dependsOn: string[];
  templateFile: string;
}

interface ManifestArtifact {
  type: string;
  environment?: string;
  dependencies?: string[];
  properties?: { stackName?: string; templateFile?: string };
}

/** The assembly's stacks in dependency order; ties keep the app's declaration order. */
export function deploymentOrder(assemblyDir: string): PlannedStack[] {
  let manifest: { artifacts?: Record<string, ManifestArtifact> };
  try {
    manifest = JSON.parse(readFileSync(path.join(assemblyDir, "manifest.json"), "utf8"));
  } catch (error) {
    throw new StayupError(
      `no synthesized app in ${assemblyDir}: ${(error as Error).message}`,
      "synthesize it first (stayup synth)",
    );
  }
  const artifacts = Object.entries(manifest.artifacts ?? {}).filter(
    ([, a]) => a.type === "aws:cloudformation:stack",
  );
  const ids = new Set(artifacts.map(([id]) => id));
  const stacks = new Map(
    artifacts.map(([id, a]) => [
      id,
      {
        name: a.properties?.stackName ?? id,
        region: a.environment?.split("/").pop() ?? "",
        dependsOnIds: (a.dependencies ?? []).filter((d) => ids.has(d)),
        templateFile: path.join(assemblyDir, a.properties?.templateFile ?? `${id}.template.json`),
      },
    ]),
  );
  const ordered: PlannedStack[] = [];
  const done = new Set<string>();
  while (done.size < stacks.size) {
    const next = [...stacks].find(([id, s]) => !done.has(id) && s.dependsOnIds.every((d) => done.has(d)));
    if (!next) throw new StayupError(`the stacks in ${assemblyDir} depend on each other in a cycle`);
    const [id, s] = next;
    done.add(id);
    ordered.push({
      name: s.name,
      region: s.region,
      dependsOn: s.dependsOnIds.map((d) => stacks.get(d)?.name ?? d),
      templateFile: s.templateFile,
    });
  }
  return ordered;
}

/** The stacks `only` needs (itself and what it depends on, transitively), in deployment order. */
export function withDependencies(order: PlannedStack[], only: string): PlannedStack[] {
  const byName = new Map(order.map((s) => [s.name, s]));
  if (!byName.has(only)) {
    throw new StayupError(
      `no stack named ${only}`,
      `use one of: ${order.map((s) => s.name).join(", ")} (stayup ci plan lists them)`,
    );
  }
  const needed = new Set<string>();
  const visit = (name: string) => {
    if (needed.has(name)) return;
    needed.add(name);
    for (const d of byName.get(name)?.dependsOn ?? []) visit(d);
  };
  visit(only);
  return order.filter((s) => needed.has(s.name));
}

/**
 * The CDK CLI runs of a deploy or destroy over a synthesized assembly: one stack each
 * (`--exclusively`), deploys in dependency order and destroys in reverse, so the order is exactly
 * the one printed by `stayup ci plan`.
 */
export function cdkSteps(
  assemblyDir: string,
  action: "deploy" | "destroy",
  stacks: PlannedStack[],
  extra: string[] = [],
): string[][] {
  const ordered = action === "deploy" ? stacks : [...stacks].reverse();
  const flags = action === "deploy" ? ["--require-approval", "never", "--progress", "events"] : ["--force"];
  return ordered.map((s) => [action, "--app", assemblyDir, "--exclusively", s.name, ...flags, ...extra]);
}

/** ECR repositories the assembly's stacks create, by their fixed names (the image is pushed there). */
export function imageRepositories(order: PlannedStack[]): { name: string; region: string; stack: string }[] {
  return order.flatMap((s) => {
    const template = JSON.parse(readFileSync(s.templateFile, "utf8")) as {
      Resources?: Record<string, { Type: string; Properties?: { RepositoryName?: unknown } }>;
    };
    return Object.entries(template.Resources ?? {})
      .filter(([, r]) => r.Type === "AWS::ECR::Repository")
      .map(([logicalId, r]) => {
        const name = r.Properties?.RepositoryName;
        if (typeof name !== "string") {
          throw new StayupError(
            `the ECR repository ${logicalId} in ${s.name} has no fixed name`,
            "give it repositoryName, so the image can be pushed there and the deploy role limited to it",
          );
        }
        return { name, region: s.region, stack: s.name };
      });
  });
}
