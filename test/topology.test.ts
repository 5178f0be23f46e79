import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { App } from "aws-cdk-lib";
import type { Command } from "commander";
import { buildProgram } from "../src/cli/main.ts";
import { addStayupStacks } from "../src/aws/app.ts";
import { SingleInstanceLocalStack } from "../src/local/single-instance/stack.ts";
import { createLocalStack } from "../src/local/topologies/index.ts";
import { loadStack, StackValidationError, topologies, validateStack } from "../src/stack/index.ts";
import { configPath, repoRoot, runCli, tempDir } from "./helpers.ts";

const valid = async () => structuredClone((await import("../stayup.config.ts")).default);

describe("topology: one shared setting, one builder per topology on each side", () => {
  it("is a top-level field of the description; aws.topology is refused with the fix", async () => {
    const input = (await valid()) as Record<string, unknown>;
    (input.aws as Record<string, unknown>).topology = "single-instance";
    input.topology = "kubernetes";
    let error: StackValidationError | undefined;
    try {
      validateStack(input);
    } catch (e) {
      error = e as StackValidationError;
    }
    assert.ok(error instanceof StackValidationError);
    const byPath = new Map(error.problems.map((p) => [p.path, p.message]));
    assert.match(byPath.get("aws") ?? "", /unknown field.*"topology"/);
    assert.match(byPath.get("topology") ?? "", /"load-balanced", "single-instance"/);
  });

  it("--topology's override replaces the file's value and is validated like the file", async () => {
    const dev = await loadStack(configPath, "dev");
    assert.equal(dev.topology, "load-balanced");
    const single = await loadStack(configPath, "dev", { topology: "single-instance" });
    assert.equal(single.topology, "single-instance");
    // A variant the rest of the file forbids is refused with the field path, before anything starts.
    const dir = tempDir();
    const file = path.join(dir, "stayup.config.ts");
    const source = (await import("node:fs")).readFileSync(configPath, "utf8");
    writeFileSync(
      file,
      source
        .replace(
          'from "./src/stack/index.ts"',
          `from ${JSON.stringify(path.join(repoRoot, "src/stack/index.ts"))}`,
        )
        .replace("https: false", "https: true")
        .replace("// hostedZone:", "hostedZone:")
        .replace('name: "app.stayup.test"', 'name: "app.example.com"'),
    );
    assert.equal((await loadStack(file, "dev")).aws.https, true);
    await assert.rejects(
      loadStack(file, "dev", { topology: "single-instance" }),
      (e: StackValidationError) => {
        assert.ok(e instanceof StackValidationError);
        assert.match(e.message, /aws\.https: needs the load-balanced topology/);
        return true;
      },
    );
  });

  it("the AWS side renders each topology's own stacks", async () => {
    const rendered = new Map<string, string[]>();
    for (const topology of topologies) {
      const stack = await loadStack(configPath, "dev", { topology });
      const app = new App({ outdir: tempDir("stayup-topology-") });
      rendered.set(
        topology,
        addStayupStacks(app, stack, tempDir()).ordered.map((s) => s.stackName),
      );
    }
    assert.ok(rendered.get("load-balanced")?.includes("stayup-dev-web"));
    assert.ok(!rendered.get("load-balanced")?.includes("stayup-dev-single-instance"));
    assert.deepEqual(rendered.get("single-instance"), ["stayup-dev-network", "stayup-dev-single-instance"]);
  });

  it("locally, each topology gets its own builder's runtime", async () => {
    const stack = await loadStack(configPath, "dev", { topology: "single-instance" });
    const single = createLocalStack({
      stack,
      stateDir: tempDir(),
      listenerPort: 0,
      redisPort: 0,
      dnsPort: 0,
    });
    assert.ok(single instanceof SingleInstanceLocalStack);
    const loadBalanced = await loadStack(configPath, "dev");
    const local = createLocalStack({
      stack: loadBalanced,
      stateDir: tempDir(),
      listenerPort: 0,
      redisPort: 0,
    });
    assert.equal(local.primary.name, "eu-west-3");
  });

  it("the CLI offers --topology with the schema's choices and refuses others", async () => {
    // Each command's help as `stayup <command> --help` prints it, from the CLI's own program: one
    // process for all six instead of one each (the refusal below runs the real CLI).
    const program = await buildProgram();
    for (const command of [
      ["up"],
      ["drill", "kill-instance"],
      ["synth"],
      ["check"],
      ["deploy"],
      ["destroy"],
    ]) {
      let found: Command | undefined;
      for (const name of command) {
        found = (found ?? program).commands.find((c) => c.name() === name);
        assert.ok(found, command.join(" "));
      }
      let help = "";
      found?.configureOutput({ writeOut: (text) => (help += text) });
      found?.outputHelp();
      assert.match(
        help,
        /--topology <topology>.*choices: "load-balanced", "single-instance"/s,
        command.join(" "),
      );
    }
    const bad = await runCli(["synth", "--topology", "kubernetes"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Allowed choices are load-balanced, single-instance/);
  });

  it("stayup synth --topology single-instance renders the single instance from the unchanged file", async () => {
    const out = tempDir("stayup-synth-");
    const result = await runCli(["synth", "--env", "dev", "--topology", "single-instance", "--out", out], {
      timeoutMs: 240_000,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /stayup-dev-single-instance/);
    assert.doesNotMatch(result.stdout, /stayup-dev-web/);
  });
});
