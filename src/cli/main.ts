import { Command } from "commander";
import { StayupError } from "../shared/errors.ts";
import * as check from "./commands/check/index.ts";
import * as ci from "./commands/ci/index.ts";
import * as cost from "./commands/cost/index.ts";
import * as diagram from "./commands/diagram/index.ts";
import * as deploy from "./commands/deploy/index.ts";
import * as destroy from "./commands/destroy/index.ts";
import * as down from "./commands/down/index.ts";
import * as drill from "./commands/drill/index.ts";
import * as faults from "./commands/faults/index.ts";
import * as outputs from "./commands/outputs/index.ts";
import * as roll from "./commands/roll/index.ts";
import * as report from "./commands/report/index.ts";
import * as status from "./commands/status/index.ts";
import * as synth from "./commands/synth/index.ts";
import * as up from "./commands/up/index.ts";

/** Every command, in help order: a new command is its folder under commands/ and one line here. */
const commands: { register(program: Command): void }[] = [
  up,
  down,
  status,
  drill,
  faults,
  roll,
  report,
  synth,
  check,
  cost,
  diagram,
  deploy,
  destroy,
  outputs,
  ci,
];

export function buildProgram(): Command {
  const program = new Command("stayup")
    .description("A highly-available web stack you can run on a laptop, break on purpose, and deploy to AWS.")
    .configureOutput({ outputError: (str, write) => write(str) });
  for (const command of commands) command.register(program);
  hintAfterErrors(program, "stayup");
  return program;
}

/**
 * A usage error (unknown option, missing argument) prints the error and where the usage is, not
 * the whole help: the error is the line to read (issue 25, item 10).
 */
function hintAfterErrors(command: Command, name: string): void {
  command.showHelpAfterError(`  fix: see \`${name} --help\` for the options`);
  for (const sub of command.commands) hintAfterErrors(sub, `${name} ${sub.name()}`);
}

/**
 * Output piped into a reader that stops early (`stayup status | head -4`) closes the pipe: what is
 * left to print is dropped rather than dying on EPIPE with a stack trace. The command itself goes
 * on (a foreground `up` still stops its stack cleanly).
 */
function ignoreClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE") throw error;
    });
  }
}

export async function main(argv = process.argv): Promise<void> {
  ignoreClosedPipes();
  try {
    await buildProgram().parseAsync(argv);
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
