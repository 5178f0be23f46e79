import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { cruise, format, type ICruiseResult } from "dependency-cruiser";
import extractDepcruiseOptions from "dependency-cruiser/config-utl/extract-depcruise-options";
import extractTSConfig from "dependency-cruiser/config-utl/extract-ts-config";
import { tempDir } from "./helpers.ts";

// The import rules `npm run lint` checks on src/ (.dependency-cruiser.mjs), run with the same
// options on a small tree with one of each fault: what each rule must report, and what it must
// let through.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Module path → source. Every module not named in a fault below is allowed where it is. */
const tree: Record<string, string> = {
  "src/shared/errors.ts": "export class StayupError extends Error {}\n",
  "src/stack/index.ts":
    'import { StayupError } from "../shared/errors.ts";\nexport const fail = () => new StayupError();\n',
  // Fault: a circle through type-only imports.
  "src/stack/schema.ts":
    'import type { Derived } from "./derived.ts";\nexport interface Schema { derived?: Derived }\n',
  "src/stack/derived.ts":
    'import type { Schema } from "./schema.ts";\nexport interface Derived { schema?: Schema }\n',
  // Fault: the stack description reaching up to the CLI.
  "src/stack/upward.ts": 'import { main } from "../cli/main.ts";\nexport const run = main;\n',
  "src/web-service/server.ts": 'import { fail } from "../stack/index.ts";\nexport const serve = fail;\n',
  // Fault: a circle of runtime imports.
  "src/local/events/bus.ts": 'import { guard } from "./guard.ts";\nexport const bus = () => guard;\n',
  "src/local/events/guard.ts": 'import { bus } from "./bus.ts";\nexport const guard = () => bus;\n',
  "src/local/target-group/controller.ts":
    'import type { bus } from "../events/bus.ts";\nexport type Publish = typeof bus;\n',
  // Fault: a controller importing the runtime that composes it.
  "src/local/redis/controller.ts":
    'import { LocalStack } from "../runtime.ts";\nexport const stack = LocalStack;\n',
  "src/local/runtime.ts":
    'import type { Publish } from "./target-group/controller.ts";\nimport { serve } from "../web-service/server.ts";\nexport class LocalStack { publish?: Publish; serve = serve }\n',
  // Fault: the dashboard starting drills itself (drills come in through the control plane).
  "src/local/dashboard/dashboard.ts":
    'import { drills } from "../../drills/registry.ts";\nimport { LocalStack } from "../runtime.ts";\nexport const dashboard = { drills, LocalStack };\n',
  // Fault: no module of the dashboard reaches up to the drills or the CLI.
  "src/local/dashboard/page.ts":
    'import { drills } from "../../drills/registry.ts";\nexport const page = drills;\n',
  "src/local/dashboard/commands.ts":
    'import { main } from "../../cli/main.ts";\nexport const commands = main;\n',
  // Fault: one renderer importing the other.
  "src/aws/app.ts": 'import { LocalStack } from "../local/runtime.ts";\nexport const app = LocalStack;\n',
  "src/drills/registry.ts":
    'import type { LocalStack } from "../local/runtime.ts";\nexport const drills: LocalStack[] = [];\n',
  "src/cli/main.ts": 'import { drills } from "../drills/registry.ts";\nexport const main = () => drills;\n',
  // Fault: a module outside every layer.
  "src/plugins/extra.ts":
    'import { StayupError } from "../shared/errors.ts";\nexport const extra = StayupError;\n',
  // Fault: a module of src/local outside every tier.
  "src/local/extra.ts": 'import { bus } from "./events/bus.ts";\nexport const extra = bus;\n',
};

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
  /** For a circle: the modules on it, from `to` back to `from`. */
  cycle?: { name: string; dependencyTypes: string[] }[];
}

describe("import rules (.dependency-cruiser.mjs, run by npm run lint)", () => {
  let lintExitCode = 0;
  let lintOutput = "";
  let violations: Violation[] = [];
  const reported = (rule: string) =>
    violations
      .filter((v) => v.rule.name === rule)
      .map((v) => `${v.from} → ${v.to}`)
      .sort();
  /** The circles reported, each as its modules sorted. */
  const circles = () =>
    violations
      .filter((v) => v.rule.name === "no-circular")
      .map((v) => (v.cycle ?? []).map((m) => m.name).sort())
      .sort();

  before(async () => {
    const dir = tempDir("stayup-import-layers-");
    for (const [file, source] of Object.entries(tree)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), source);
    }
    writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          allowImportingTsExtensions: true,
        },
        include: ["src"],
      }),
    );
    // In process, as the CLI of `npm run lint:imports` does it: the same options from the same file.
    const options = await extractDepcruiseOptions(path.join(root, ".dependency-cruiser.mjs"));
    const tsConfig = extractTSConfig(path.join(dir, "tsconfig.json"));
    const cruised = await cruise(["src"], { ...options, baseDir: dir, outputType: "json" }, {}, { tsConfig });
    const result = JSON.parse(String(cruised.output)) as ICruiseResult;
    violations = result.summary.violations as Violation[];
    // The lint's reporter: its exit code is the number of errors.
    const lint = await format(result, { outputType: "err" });
    lintExitCode = lint.exitCode;
    lintOutput = String(lint.output);
  });

  it("fails as lint runs it, with every fault reported as an error", () => {
    assert.ok(violations.length > 0);
    assert.ok(violations.every((v) => v.rule.severity === "error"));
    assert.ok(lintExitCode > 0, lintOutput);
    for (const v of violations)
      assert.match(lintOutput, new RegExp(`error ${v.rule.name}: ${v.from} → ${v.to}`));
  });

  it("reports a circle of runtime imports, and one of type-only imports: they count as arrows", () => {
    assert.deepEqual(circles(), [
      ["src/local/events/bus.ts", "src/local/events/guard.ts"],
      ["src/stack/derived.ts", "src/stack/schema.ts"],
    ]);
    const typeOnly = violations.find((v) => v.cycle?.some((m) => m.name === "src/stack/schema.ts"));
    assert.ok(typeOnly?.cycle?.every((m) => m.dependencyTypes.includes("type-only")));
  });

  it("reports a lower layer importing a higher one", () => {
    assert.deepEqual(reported("not-above-stack"), ["src/stack/upward.ts → src/cli/main.ts"]);
  });

  it("reports a local controller importing the runtime that composes it", () => {
    assert.deepEqual(reported("not-above-local-controllers"), [
      "src/local/redis/controller.ts → src/local/runtime.ts",
    ]);
  });

  it("reports one renderer importing the other", () => {
    assert.deepEqual(reported("renderers-apart"), ["src/aws/app.ts → src/local/runtime.ts"]);
  });

  it("reports the dashboard reaching up to the drills or the CLI", () => {
    assert.deepEqual(reported("not-above-renderers"), [
      "src/local/dashboard/commands.ts → src/cli/main.ts",
      "src/local/dashboard/dashboard.ts → src/drills/registry.ts",
      "src/local/dashboard/page.ts → src/drills/registry.ts",
    ]);
  });

  it("reports a module outside every layer, and one of src/local outside every tier", () => {
    assert.deepEqual(reported("in-a-layer"), ["src/plugins/extra.ts → src/shared/errors.ts"]);
    assert.deepEqual(reported("in-a-local-tier"), ["src/local/extra.ts → src/local/events/bus.ts"]);
  });

  it("reports nothing else: the modules in their layers pass", () => {
    const faults = [
      "no-circular",
      "not-above-stack",
      "not-above-local-controllers",
      "renderers-apart",
      "not-above-renderers",
      "in-a-layer",
      "in-a-local-tier",
    ];
    assert.deepEqual(
      violations
        .filter((v) => !faults.includes(v.rule.name))
        .map((v) => `${v.rule.name}: ${v.from} → ${v.to}`),
      [],
    );
  });
});
