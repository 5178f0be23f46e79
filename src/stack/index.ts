import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { StayupError } from "../shared/errors.ts";
import { describeIssue, misspeltRequiredFields } from "./issues.ts";
import { defaultConfigFile } from "./names.ts";
import { unclosedBracket } from "./unclosed-bracket.ts";
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
export { defaultConfigFile };

function formatPath(p: ReadonlyArray<PropertyKey>): string {
  return p.reduce<string>(
    (acc, key) => (typeof key === "number" ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
    "",
  );
}

export class StackValidationError extends StayupError {
  constructor(
    readonly source: string,
    readonly problems: { path: string; message: string }[],
  ) {
    super(
      `${source} is not a valid stack description (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  ✗ ${p.path || "(root)"}: ${p.message}`).join("\n"),
      "fix the fields above",
    );
    this.name = "StackValidationError";
  }
}

/** Validates a description, reporting every bad field with its path and what is allowed. */
export function validateStack(input: unknown, source = "stack description"): ValidStackDescription {
  // reportInput: each problem can echo the value given ("got string \"8000\"").
  const result = stackDescriptionSchema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  const misspelt = misspeltRequiredFields(result.error.issues, stackDescriptionSchema);
  throw new StackValidationError(
    source,
    result.error.issues
      .filter((issue) => !misspelt.has(issue))
      .map((issue) => ({
        path: formatPath(issue.path),
        message: describeIssue(issue, stackDescriptionSchema),
      })),
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

/**
 * A description that does not load: a syntax error at the line to fix. The parser reports a
 * bracket left open only at the end of the file; the bracket itself is found (unclosed-bracket.ts).
 */
function loadError(file: string, error: Error): StayupError {
  const fix = "fix the syntax or imports of the stack description";
  const at = /:(\d+):(\d+): ERROR: (.*)/.exec(error.message);
  if (!at) return new StayupError(`could not load ${file}: ${error.message}`, fix);
  const [line, column, text] = [Number(at[1]), Number(at[2]), at[3] as string];
  const source = readFileSync(file, "utf8");
  const lastLine = source.trimEnd().split("\n").length;
  const open = line >= lastLine || /end of file/i.test(text) ? unclosedBracket(source) : undefined;
  if (open) {
    return new StayupError(
      `${file}:${open.line}:${open.column}: syntax error: this "${open.bracket}" is never closed (line ${open.noticedAtLine} is not inside it; the parser noticed at line ${line}: ${text})`,
      `close it where its contents end, before line ${open.noticedAtLine}`,
    );
  }
  return new StayupError(`${file}:${line}:${column}: syntax error: ${text}`, fix);
}

/**
 * For the commands that start a stack (`up`, `drill`): a description refused says so, for a user
 * wondering what is left running. `synth` and `diagram` start nothing and do not say it.
 */
export function nothingStarted(error: unknown): never {
  if (error instanceof StayupError && error.hint) {
    throw new StayupError(error.message, `${error.hint}; nothing was started`);
  }
  throw error;
}

/** Settings a command line may override for one run, as `--env` chooses the environment. */
export interface StackOverrides {
  topology?: Topology;
}

/**
 * The description file's module. Its TypeScript (and any TypeScript it imports: stayup's own
 * sources, `import ... from "stayup"`) is compiled by esbuild into one module, whatever the
 * enclosing package.json says about modules; the JavaScript it imports (zod, a package) stays
 * where it is and is loaded by Node as usual, so a module the runtime has loaded is not loaded
 * twice. Not tsx's loader: registering it starts a thread of module hooks that lives as long as
 * the process, 36 MiB more in a running stack (docs/benchmarks.md, "What the default stack holds
 * at rest"). Loaded here, not with this module: commands that read no description skip its cost.
 */
async function importDescription(file: string): Promise<{ default?: unknown }> {
  const { buildThenStop } = await import("../shared/esbuild.ts");
  const built = await buildThenStop({
    entryPoints: [file],
    bundle: true,
    write: false,
    format: "esm",
    platform: "node",
    target: "node20",
    // Node's conditions only (esbuild adds "module" by default): a package resolves to the file
    // Node itself would load.
    conditions: [],
    logLevel: "silent",
    // Each compiled file keeps its own URL as import.meta.url (the module itself is a data: URL).
    define: { "import.meta.url": "__stayupSourceUrl" },
    plugins: [
      {
        name: "javascript-stays-external",
        setup(build) {
          build.onResolve({ filter: /.*/ }, async (args) => {
            if (args.kind === "entry-point" || args.pluginData === "resolving") return undefined;
            const found = await build.resolve(args.path, {
              kind: args.kind,
              importer: args.importer,
              resolveDir: args.resolveDir,
              pluginData: "resolving",
            });
            if (found.errors.length > 0 || found.external || !/\.[cm]?js$/.test(found.path)) return found;
            return { path: pathToFileURL(found.path).href, external: true };
          });
          build.onLoad({ filter: /\.[cm]?tsx?$/ }, (args) => {
            const source = readFileSync(args.path, "utf8");
            // On the first line, not before it: an error's line number stays the file's.
            const url = `const __stayupSourceUrl = ${JSON.stringify(pathToFileURL(args.path).href)};`;
            const contents = source.includes("import.meta") ? url + source : source;
            return { loader: args.path.endsWith("x") ? "tsx" : "ts", contents };
          });
        },
      },
    ],
  });
  const code = built.outputFiles[0]?.text ?? "";
  return (await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`)) as {
    default?: unknown;
  };
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
    mod = await importDescription(file);
  } catch (error) {
    throw loadError(file, error as Error);
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
