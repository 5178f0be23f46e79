import { readFileSync } from "node:fs";
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
import * as init from "./commands/init/index.ts";
import * as outputs from "./commands/outputs/index.ts";
import * as roll from "./commands/roll/index.ts";
import * as report from "./commands/report/index.ts";
import * as status from "./commands/status/index.ts";
import * as synth from "./commands/synth/index.ts";
import * as up from "./commands/up/index.ts";
import { addHelpExamples } from "./help-examples.ts";

/** Every command, in help order: a new command is its folder under commands/ and one line here. */
const commands: { register(program: Command): void }[] = [
  init,
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

/** The installed package's version (`stayup --version`). */
export const stayupVersion = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export function buildProgram(): Command {
  const program = new Command("stayup")
    .description("A highly-available web stack you can run on a laptop, break on purpose, and deploy to AWS.")
    .version(stayupVersion, "-V, --version", "print stayup's version")
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });
  for (const command of commands) command.register(program);
  addHelpExamples(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
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
