import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { type Command, Help } from "commander";
import { commandPath } from "../src/cli/help-examples.ts";
import { buildProgram, catalog, listingProgram, requestedCommand, stayupVersion } from "../src/cli/main.ts";
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

  it("every command shows examples that name itself and only options it has", async () => {
    const program = await buildProgram();
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

describe("stayup loads only the command it runs (src/cli/main.ts's catalog)", () => {
  it("the catalog lists every command as the command itself does", async () => {
    const help = new Help();
    const program = await buildProgram();
    assert.deepEqual(
      program.commands.map((c) => c.name()),
      Object.keys(catalog),
    );
    for (const command of program.commands) {
      const entry = catalog[command.name()];
      assert.ok(entry, `${command.name()} is missing from the catalog`);
      assert.equal(entry.term, help.subcommandTerm(command), `catalog term of ${command.name()}`);
      assert.equal(entry.description, command.description(), `catalog description of ${command.name()}`);
    }
  });

  it("stayup --help lists the same commands as the whole program, without loading them", async () => {
    assert.equal(helpOf(listingProgram()), helpOf(await buildProgram()));
    assert.equal(helpOf(await buildProgram("status")), helpOf(await buildProgram()));
  });

  it("the command asked for is found, help <command> included", () => {
    assert.equal(requestedCommand(["up", "--detach"]), "up");
    assert.equal(requestedCommand(["help", "drill"]), "drill");
    assert.equal(requestedCommand(["--help"]), undefined);
    assert.equal(requestedCommand(["nonsense"]), undefined);
    assert.equal(requestedCommand(["constructor"]), undefined);
  });

  it("the command asked for is the real one: its options and subcommands", async () => {
    const lazy = await buildProgram("drill");
    const drill = lazy.commands.find((c) => c.name() === "drill");
    assert.ok(drill && drill.commands.some((c) => c.name() === "kill-instance"));
    const up = lazy.commands.find((c) => c.name() === "up");
    assert.equal(up?.options.length, 0, "the others are placeholders");
  });
});
