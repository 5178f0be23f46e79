import { Command } from "commander";
import { StayupError } from "../shared/errors.ts";
interface CommandModule {
  register(program: Command): void;
}

/**
 * Every command, in help order: a new command is its folder under commands/ and one line here.
 * Loaded on demand: `stayup status` loads only status's modules, not the AWS CDK and the local
 * runtime that other commands need (every command used to spend about 2 s of CPU loading them all).
 */
const commandLoaders: Record<string, () => Promise<CommandModule>> = {
  up: () => import("./commands/up/index.ts"),
  down: () => import("./commands/down/index.ts"),
  status: () => import("./commands/status/index.ts"),
  drill: () => import("./commands/drill/index.ts"),
  faults: () => import("./commands/faults/index.ts"),
  roll: () => import("./commands/roll/index.ts"),
  report: () => import("./commands/report/index.ts"),
  synth: () => import("./commands/synth/index.ts"),
  check: () => import("./commands/check/index.ts"),
  cost: () => import("./commands/cost/index.ts"),
  diagram: () => import("./commands/diagram/index.ts"),
  deploy: () => import("./commands/deploy/index.ts"),
  destroy: () => import("./commands/destroy/index.ts"),
  outputs: () => import("./commands/outputs/index.ts"),
  ci: () => import("./commands/ci/index.ts"),
};

/**
 * The program with every command, or with only `commandName`'s when it names one (what `main`
 * runs). Unknown names, `--help` and no command load them all, for help and suggestions.
 */
export async function buildProgram(commandName?: string): Promise<Command> {
  const names =
    commandName && Object.hasOwn(commandLoaders, commandName) ? [commandName] : Object.keys(commandLoaders);
  const modules = await Promise.all(names.map((name) => commandLoaders[name]!()));
  const program = new Command("stayup")
    .description("A highly-available web stack you can run on a laptop, break on purpose, and deploy to AWS.")
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });
  for (const command of modules) command.register(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await (await buildProgram(argv[2])).parseAsync(argv);
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
