import { readFileSync } from "node:fs";
import path from "node:path";
import { type CloudFormationClient, GetTemplateCommand } from "@aws-sdk/client-cloudformation";
import { Tags, Validations } from "aws-cdk-lib";
import { StayupError } from "../../shared/errors.ts";
import { type EnvironmentName, environmentNames, type ResolvedStack } from "../../stack/index.ts";
import { ciAcknowledgements } from "../compliance/acknowledgements.ts";
import { createStayupApp, synthesizeChecked } from "../compliance/checks.ts";
import { deploymentOrder, imageRepositories } from "../plan.ts";
import { synthesize } from "../synth.ts";
import { clusterName, containerInstanceGroupName } from "../ecs/cluster.ts";
import { serviceName } from "../ecs/destroy.ts";
import { type CiEnvironmentAccess, CiStack } from "./ci-stack.ts";

export const ciStackName = (stack: Pick<ResolvedStack, "name">) => `${stack.name}-ci`;

/** The description without `ci`: the error says which field to add and how. */
export function requireCi(stack: ResolvedStack): NonNullable<ResolvedStack["ci"]> {
  if (stack.ci) return stack.ci;
  throw new StayupError(
    "ci: is required for the CI stack (the GitHub repository its deploy roles trust)",
    'add to the description: ci: { github: { owner: "you", repository: "stayup", branch: "main", protectedEnvironments: ["prod"] } }',
  );
}

/** What an environment's deploy role may touch, read from the environment's synthesized app. */
export function environmentAccess(environment: EnvironmentName, assemblyDir: string): CiEnvironmentAccess {
  const order = deploymentOrder(assemblyDir);
  return {
    environment,
    stacks: order.map((s) => ({ name: s.name, region: s.region })),
    imageRepositories: imageRepositories(order).map((r) => ({ name: r.name, region: r.region })),
  };
}

export interface CiSynthesis {
  outdir: string;
  stackName: string;
  region: string;
  templateFile: string;
  ciStack: CiStack;
}

/**
 * Synthesizes `stayup-ci` alone, in an assembly of its own (so `stayup deploy` never touches it).
 * `stacks` holds the description resolved for each environment; each environment's app is
 * synthesized next to it first (`<outdir>/../<env>`), and its roles are limited to what that app holds.
 */
export function synthesizeCi(
  stacks: Record<EnvironmentName, ResolvedStack>,
  outdir: string,
  options: { compliance?: boolean } = {},
): CiSynthesis {
  const first = stacks[environmentNames[0]];
  requireCi(first);
  const app = createStayupApp({ outdir, compliance: options.compliance });
  const name = ciStackName(first);
  const environments = environmentNames.map((env) => {
    const assemblyDir = path.join(outdir, "..", env);
    synthesize(stacks[env], assemblyDir);
    const access = environmentAccess(env, assemblyDir);
    const s = stacks[env];
    if (s.topology === "ecs") {
      access.ecsTeardown = {
        region: s.regions.primary.name,
        cluster: clusterName(s),
        service: serviceName(s),
        group: containerInstanceGroupName(s),
      };
    }
    return access;
  });
  const ciStack = new CiStack(app, name, {
    stack: first,
    env: { region: first.regions.primary.name, account: process.env.CDK_DEFAULT_ACCOUNT },
    description: `stayup CI: GitHub OIDC provider and the deploy roles of ${first.ci?.github.owner}/${first.ci?.github.repository}`,
    // The trust root of every deploy: removing it is a deliberate act.
    terminationProtection: true,
    environments,
  });
  for (const ack of ciAcknowledgements(environments)) {
    Validations.of(ciStack).acknowledge({ id: ack.id, reason: ack.reason });
  }
  Tags.of(app).add("Project", "stayup");
  Tags.of(app).add("stayup:stack", first.name);
  synthesizeChecked(app, "the CI stack", options.compliance);
  return {
    outdir,
    stackName: name,
    region: ciStack.region,
    templateFile: path.join(outdir, ciStack.templateFile),
    ciStack,
  };
}

export interface CiStackDrift {
  stackName: string;
  /** The CI stack exists in the account. */
  deployed: boolean;
  /** Logical ids whose resource was added, removed or changed since it was deployed. */
  differences: string[];
}

const sortedJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );

/**
 * Whether the deployed CI stack still matches the description: its template (CloudFormation
 * GetTemplate) against the one synthesized now. A topology switch, a new region or a new
 * environment changes what the deploy roles need, and a role frozen at `stayup ci bootstrap` gets
 * AccessDenied: `stayup ci plan --compare-deployed` says so before a deploy does.
 */
export async function ciStackDrift(synthesis: CiSynthesis, cfn: CloudFormationClient): Promise<CiStackDrift> {
  const wanted = JSON.parse(readFileSync(synthesis.templateFile, "utf8")) as {
    Resources?: Record<string, unknown>;
  };
  let body: string | undefined;
  try {
    body = (
      await cfn.send(new GetTemplateCommand({ StackName: synthesis.stackName, TemplateStage: "Original" }))
    ).TemplateBody;
  } catch (error) {
    if (/does not exist/.test((error as Error).message)) {
      return { stackName: synthesis.stackName, deployed: false, differences: [] };
    }
    throw error;
  }
  const deployed = JSON.parse(body ?? "{}") as { Resources?: Record<string, unknown> };
  const ids = new Set([...Object.keys(wanted.Resources ?? {}), ...Object.keys(deployed.Resources ?? {})]);
  const differences = [...ids]
    .filter((id) => sortedJson(wanted.Resources?.[id]) !== sortedJson(deployed.Resources?.[id]))
    .sort();
  return { stackName: synthesis.stackName, deployed: true, differences };
}
