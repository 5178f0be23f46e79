import { existsSync } from "node:fs";
import path from "node:path";
import { tsImport } from "tsx/esm/api";
import type { z } from "zod";
import { StayupError } from "../shared/errors.ts";
import {
  type EnvironmentName,
  environmentNames,
  type ResolvedStack,
  stackDescriptionSchema,
  type Topology,
  type ValidStackDescription,
} from "./schema.ts";

export * from "./schema.ts";

export { defineStack } from "./public.ts";

function formatPath(p: ReadonlyArray<PropertyKey>): string {
  return p.reduce<string>(
    (acc, key) => (typeof key === "number" ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
    "",
  );
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    return `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}: remove them or check the spelling`;
  }
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return `is required (${issue.expected})`;
  }
  return issue.message;
}

export class StackValidationError extends StayupError {
  constructor(
    readonly source: string,
    readonly problems: { path: string; message: string }[],
  ) {
    super(
      `${source} is not a valid stack description (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  ✗ ${p.path || "(root)"}: ${p.message}`).join("\n"),
      "fix the fields above; nothing was started",
    );
    this.name = "StackValidationError";
  }
}

/** Validates a description, reporting every bad field with its path and what is allowed. */
export function validateStack(input: unknown, source = "stack description"): ValidStackDescription {
  const result = stackDescriptionSchema.safeParse(input);
  if (result.success) return result.data;
  throw new StackValidationError(
    source,
    result.error.issues.map((issue) => ({ path: formatPath(issue.path), message: describeIssue(issue) })),
  );
}

export function resolveStack(stack: ValidStackDescription, environment: EnvironmentName): ResolvedStack {
  if (!environmentNames.includes(environment)) {
    throw new StayupError(
      `unknown environment "${environment}"`,
      `use one of: ${environmentNames.join(", ")}`,
    );
  }
  const { environments, ...shared } = stack;
  const { regions, aws, ...chosen } = environments[environment];
  return {
    ...shared,
    ...chosen,
    regions: regions ?? shared.regions,
    aws: aws?.account ? { ...shared.aws, account: aws.account } : shared.aws,
    redis: { ...shared.redis, ...chosen.redis },
    ecs: { ...shared.ecs, ...chosen.ecs },
    environment,
  };
}

export const defaultConfigFile = "stayup.config.ts";

/** Settings a command line may override for one run, as `--env` chooses the environment. */
export interface StackOverrides {
  topology?: Topology;
}

/**
 * Loads, validates and resolves a stack description file (TypeScript or JavaScript, default export).
 * Overrides replace the file's values before validation, so a variant is checked like the file.
 */
export async function loadStack(
  configFile: string = defaultConfigFile,
  environment: EnvironmentName = "dev",
  overrides: StackOverrides = {},
): Promise<ResolvedStack> {
  const file = path.resolve(configFile);
  if (!existsSync(file)) {
    throw new StayupError(
      `no stack description at ${file}`,
      `run stayup from your project's folder (npx stayup init writes one there), or pass --config path/to/${defaultConfigFile}`,
    );
  }
  let mod: { default?: unknown };
  try {
    // tsx loads TypeScript from anywhere, whatever the enclosing package.json says about modules.
    mod = (await tsImport(file, import.meta.url)) as { default?: unknown };
  } catch (error) {
    throw new StayupError(
      `could not load ${file}: ${(error as Error).message}`,
      "fix the syntax or imports of the stack description",
    );
  }
  let exported = mod.default;
  // A file loaded as CommonJS (outside a "type": "module" package) nests its default export once more.
  if (exported && typeof exported === "object" && "default" in exported) {
    exported = (exported as { default: unknown }).default;
  }
  if (exported === undefined) {
    throw new StayupError(
      `${file} has no default export`,
      "end it with: export default defineStack({ ... })",
    );
  }
  if (overrides.topology !== undefined && exported && typeof exported === "object") {
    exported = { ...exported, topology: overrides.topology };
  }
  const source = path.relative(process.cwd(), file) || file;
  const valid = validateStack(exported, source);
  // The service's folder is relative to the description's, wherever stayup is run from.
  const start = valid.webService.start;
  if (start) start.workingDirectory = path.resolve(path.dirname(file), start.workingDirectory);
  const aws = valid.webService.aws;
  if (aws?.folder) aws.folder = path.resolve(path.dirname(file), aws.folder);
  return resolveStack(valid, environment);
}

export {
  derive,
  type DerivedSettings,
  REGION_HEALTH_CHECK_PATH,
  serviceTraffic,
  type ServiceTraffic,
  standbyCapacity,
} from "./derived.ts";
