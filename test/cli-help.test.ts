import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import type { Command } from "commander";
import { commandPath } from "../src/cli/help-examples.ts";
import { buildProgram, stayupVersion } from "../src/cli/main.ts";
import { repoRoot, runCli } from "./helpers.ts";

/** Every command below the program, subcommands included (commander's own `help` left out). */
function allCommands(command: Command): Command[] {
  return command.commands.flatMap((c) => [c, ...allCommands(c)]);
}

function helpOf(command: Command): string {
  let help = "";
  command.configureOutput({ writeOut: (s) => (help += s) });
  command.outputHelp();
  return help;
}

/** The flags an example line uses, up to a comment, pipe or redirection. */
function exampleFlags(line: string): string[] {
  const words = line.split(/\s+(?:#|\||>).*$/)[0]!.split(/\s+/);
  return words.filter((w) => w.startsWith("-")).map((w) => w.split("=")[0]!);
}

describe("stayup --version and every command's --help examples", () => {
  it("--version prints package.json's version", async () => {
    const version = (
      JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string }
    ).version;
    assert.equal(stayupVersion, version);
    const result = await runCli(["--version"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), version);
  });

  it("every command shows examples that name itself and only options it has", () => {
    const program = buildProgram();
    const commands = allCommands(program);
    assert.ok(commands.length >= 16, `found ${commands.length} commands`);
    for (const command of commands) {
      const name = commandPath(command);
      const help = helpOf(command);
      const examples = help.split("\nExamples:\n")[1];
      assert.ok(examples, `stayup ${name} --help has no examples`);
      const lines = examples.split("\n").filter((l) => l.trim().startsWith("npx stayup"));
      assert.ok(lines.length > 0, `stayup ${name} --help: no example line`);
      const known = new Set(command.options.flatMap((o) => [o.long, o.short]).filter(Boolean));
      for (const line of lines) {
        // A group's examples run its subcommands; check each against the command it runs.
        const words = line.trim().split(/\s+/).slice(2);
        let target: Command = program;
        for (const word of words) {
          const sub = target.commands.find((c) => c.name() === word);
          if (!sub) break;
          target = sub;
        }
        assert.ok(commandPath(target).startsWith(name), `"${line.trim()}" is under stayup ${name}`);
        const targetKnown =
          target === command
            ? known
            : new Set(target.options.flatMap((o) => [o.long, o.short]).filter(Boolean));
        for (const flag of exampleFlags(line.trim())) {
          assert.ok(
            targetKnown.has(flag),
            `stayup ${name} --help: "${line.trim()}" uses ${flag}, which it lacks`,
          );
        }
      }
    }
  });
});
