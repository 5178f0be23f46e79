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
  /** The account this CI stack is for, when the description names the environments' accounts. */
  account?: string;
  /** The environments whose deploy roles it holds (those of its account). */
  environments: EnvironmentName[];
  /** Environments in other accounts: each needs `stayup ci bootstrap` with its account's credentials. */
  elsewhere: { environment: EnvironmentName; account: string }[];
}

/**
 * Which environments one CI stack holds. With accounts in the description, one stack per account,
 * holding that account's environments (`account`: the credentials'); without, one stack for all.
 */
export function ciEnvironments(
  stacks: Record<EnvironmentName, ResolvedStack>,
  account?: string,
): Pick<CiSynthesis, "account" | "environments" | "elsewhere"> {
  const accounts = environmentNames.map((env) => ({ environment: env, account: stacks[env].aws.account }));
  const named = [...new Set(accounts.flatMap((a) => (a.account ? [a.account] : [])))];
  if (named.length === 0) return { environments: [...environmentNames], elsewhere: [] };
  const chosen = account ?? (named.length === 1 ? named[0] : undefined);
  if (!chosen || !named.includes(chosen)) {
    throw new StayupError(
      `${chosen ? `account ${chosen} holds` : "no account was given, and the description names several:"} no environment of the description (${accounts.map((a) => `${a.environment}: ${a.account}`).join(", ")})`,
      "run stayup ci bootstrap with the credentials of an environment's account, once per account",
    );
  }
  return {
    account: chosen,
    environments: accounts.filter((a) => a.account === chosen).map((a) => a.environment),
    elsewhere: accounts.flatMap((a) =>
      a.account && a.account !== chosen ? [{ environment: a.environment, account: a.account }] : [],
    ),
  };
}

/** The accounts that each get a CI stack: those the description names, else one (the credentials'). */
export const ciAccounts = (stacks: Record<EnvironmentName, ResolvedStack>): (string | undefined)[] => {
  const named = [...new Set(environmentNames.flatMap((env) => stacks[env].aws.account ?? []))];
  return named.length > 0 ? named : [undefined];
};

/**
 * Synthesizes `stayup-ci` alone, in an assembly of its own (so `stayup deploy` never touches it).
 * `stacks` holds the description resolved for each environment; each environment's app is
 * synthesized next to it first (`<outdir>/../<env>`), and its roles are limited to what that app
 * holds. With accounts in the description it holds the roles of `account`'s environments only.
 */
export function synthesizeCi(
  stacks: Record<EnvironmentName, ResolvedStack>,
  outdir: string,
  options: { compliance?: boolean; account?: string } = {},
): CiSynthesis {
  const first = stacks[environmentNames[0]];
  requireCi(first);
  const chosen = ciEnvironments(stacks, options.account);
  const home = stacks[chosen.environments[0] ?? environmentNames[0]];
  const app = createStayupApp({ outdir, compliance: options.compliance });
  const name = ciStackName(first);
  const environments = chosen.environments.map((env) => {
    const assemblyDir = path.join(outdir, "..", env);
    synthesize(stacks[env], assemblyDir);
    const access = environmentAccess(env, assemblyDir);
    const s = stacks[env];
    if (s.aws.account) access.account = s.aws.account;
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
    env: { region: home.regions.primary.name, account: chosen.account ?? process.env.CDK_DEFAULT_ACCOUNT },
    description: `stayup CI: GitHub OIDC provider and the deploy roles of ${first.ci?.github.owner}/${first.ci?.github.repository} (${chosen.environments.join(", ")})`,
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
    ...chosen,
  };
}

export interface CiStackDrift {
  stackName: string;
  /** The CI stack exists in the account. */
  deployed: boolean;
  /** Logical ids whose resource was added, removed or changed since it was deployed. */
  differences: string[];
  /** The environments whose deploy role (or its policy) is among the differences. */
  environments: EnvironmentName[];
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
      return { stackName: synthesis.stackName, deployed: false, differences: [], environments: [] };
    }
    throw error;
  }
  const deployed = JSON.parse(body ?? "{}") as { Resources?: Record<string, unknown> };
  const ids = new Set([...Object.keys(wanted.Resources ?? {}), ...Object.keys(deployed.Resources ?? {})]);
  const differences = [...ids]
    .filter((id) => sortedJson(wanted.Resources?.[id]) !== sortedJson(deployed.Resources?.[id]))
    .sort();
  // A role's logical id and its policy's start with DeployRole<env> (the construct id DeployRole-<env>).
  const environments = environmentNames.filter((env) =>
    differences.some((id) => id.startsWith(`DeployRole${env}`)),
  );
  return { stackName: synthesis.stackName, deployed: true, differences, environments };
}

/** What `stayup ci plan --compare-deployed` prints, and whether it is a failure. */
export function describeDrift(drift: CiStackDrift, synthesis: CiSynthesis): { ok: boolean; lines: string[] } {
  const where = synthesis.account ? ` in account ${synthesis.account}` : "";
  const others = synthesis.elsewhere.map(
    (e) =>
      `${e.environment}'s roles are in account ${e.account}: compare them with that account's credentials`,
  );
  if (!drift.deployed) {
    return {
      ok: false,
      lines: [
        `${drift.stackName} is not deployed${where}: stayup ci bootstrap, as an administrator`,
        ...others,
      ],
    };
  }
  if (drift.differences.length === 0) {
    return {
      ok: true,
      lines: [
        `${drift.stackName}${where} matches the description (deploy roles of ${synthesis.environments.join(", ")})`,
        ...others,
      ],
    };
  }
  const roles =
    drift.environments.length > 0
      ? `the deploy roles of ${drift.environments.join(", ")} were made for another topology, region or set of stacks, and a deploy would get AccessDenied`
      : "it changed";
  return {
    ok: false,
    lines: [
      `${drift.stackName}${where} no longer matches the description: ${roles} (${drift.differences.join(", ")})`,
      "deploy it again as an administrator: stayup ci bootstrap",
      ...others,
    ],
  };
}
