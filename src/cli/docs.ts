/**
 * The documentation generated from the code: docs/cli.md (every command's --help) and the drills ×
 * topologies table in docs/drills.md. `npm run docs` rewrites both; test/docs.test.ts and
 * test/drill-topologies.test.ts fail when either is stale.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { drillTopologyTable } from "../drills/registry.ts";
import { commandPath } from "./help-examples.ts";
import { buildProgram } from "./main.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const cliReferenceFile = path.join(repoRoot, "docs/cli.md");
export const drillsFile = path.join(repoRoot, "docs/drills.md");
export const drillTableMarker = "<!-- drills × topologies:";

/** A command's full --help (examples included) at a fixed width, whatever the terminal. */
function helpText(command: Command): string {
  let help = "";
  command.configureHelp({ helpWidth: 100 });
  command.configureOutput({ writeOut: (s) => (help += s), getOutHelpWidth: () => 100 });
  command.outputHelp();
  return help.trimEnd();
}

/** docs/cli.md: the program's help, then every command's and subcommand's, in help order. */
export function cliReference(program: Command): string {
  const sections = [
    "# CLI reference",
    "",
    "Reference, generated from the commands themselves (`npm run docs`): what `stayup --help` and",
    "`stayup <command> --help` print. Every command takes `--help`; `stayup --version` prints the version.",
    "",
    "```text",
    helpText(program),
    "```",
  ];
  const visit = (command: Command) => {
    for (const sub of command.commands) {
      sections.push("", `## stayup ${commandPath(sub)}`, "", "```text", helpText(sub), "```");
      visit(sub);
    }
  };
  visit(program);
  return `${sections.join("\n")}\n`;
}

/** docs/drills.md with its drills × topologies table replaced by the registry's. */
export function withDrillTable(markdown: string, table: string = drillTopologyTable()): string {
  const marker = markdown.indexOf(drillTableMarker);
  if (marker < 0) throw new Error(`docs/drills.md has no "${drillTableMarker}" marker`);
  const lines = markdown.slice(marker).split("\n");
  const start = lines.findIndex((l) => l.startsWith("|"));
  const end = start + lines.slice(start).findIndex((l) => !l.startsWith("|"));
  const after = end < start ? [] : lines.slice(end);
  return `${markdown.slice(0, marker)}${[...lines.slice(0, start), table.trimEnd(), ...after].join("\n")}`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(cliReferenceFile, cliReference(await buildProgram()));
  writeFileSync(drillsFile, withDrillTable(readFileSync(drillsFile, "utf8")));
  console.log(
    `wrote ${path.relative(process.cwd(), cliReferenceFile)} and ${path.relative(process.cwd(), drillsFile)}`,
  );
}
