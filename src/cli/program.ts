/**
 * The program without its commands, and how it runs: light on purpose (commander and node:fs
 * only), so `stayup --help`, `--version` and a command that needs little load little
 * (main.ts loads only the command asked for).
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { StayupError } from "../shared/errors.ts";

/** The installed package's version (`stayup --version`). */
export const stayupVersion = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export function baseProgram(): Command {
  return new Command("stayup")
    .description("A highly-available web stack you can run on a laptop, break on purpose, and deploy to AWS.")
    .version(stayupVersion, "-V, --version", "print stayup's version")
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });
}

/** Parses and runs; a StayupError is printed with its fix, without a stack trace, and exits 1. */
export async function runProgram(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof StayupError) {
      console.error(`error: ${error.message}`);
      if (error.hint) console.error(`  fix: ${error.hint}`);
    } else {
      console.error(error);
    }
    process.exitCode = 1;
  }
}
