import type { Command } from "commander";
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
import { baseProgram, runProgram } from "./program.ts";

export { stayupVersion } from "./program.ts";

/**
 * Every command, in help order: a new command is its folder under commands/, one line here and one
 * in lazy.ts's catalog (test/cli-help.test.ts checks they agree).
 */
export const commands: Record<string, { register(program: Command): void }> = {
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
};

/** The whole program, every command loaded (tests, docs/cli.md); `stayup` itself runs lazy.ts. */
export function buildProgram(): Command {
  const program = baseProgram();
  for (const command of Object.values(commands)) command.register(program);
  addHelpExamples(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  await runProgram(buildProgram(), argv);
}
