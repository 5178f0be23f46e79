import type { Command } from "commander";
import { addHelpExamples } from "./help-examples.ts";
import { baseProgram, runProgram } from "./program.ts";

export { stayupVersion } from "./program.ts";

export interface CatalogEntry {
  /** As `stayup --help` lists it: the name, `[options]` when it has any, its arguments. */
  term: string;
  description: string;
  load: () => Promise<{ register(program: Command): void }>;
}

/**
 * Every command, in help order: a new command is its folder under commands/ and one entry here.
 * Loaded on demand: `stayup status` loads only status's modules, not the AWS CDK and the local
 * runtime that other commands need (every command used to spend about 2 s of CPU loading them
 * all). `stayup --help` lists them from `term` and `description`, loading none
 * (test/cli-help.test.ts checks both against the commands themselves).
 */
export const catalog: Record<string, CatalogEntry> = {
  init: {
    term: "init [options]",
    description: "write a starting stack description (stayup.config.ts) for the service in this folder",
    load: () => import("./commands/init/index.ts"),
  },
  up: {
    term: "up [options]",
    description: "bring the local stack up: Redis, the instance group, health checks and the load balancer",
    load: () => import("./commands/up/index.ts"),
  },
  down: {
    term: "down [options]",
    description: "stop a stack started with `stayup up --detach` (or in another terminal)",
    load: () => import("./commands/down/index.ts"),
  },
  status: {
    term: "status [options]",
    description: "show the running stack: topology, listener, group capacity, instances and their health",
    load: () => import("./commands/status/index.ts"),
  },
  drill: {
    term: "drill",
    description: "break the stack on purpose and report what users saw",
    load: () => import("./commands/drill/index.ts"),
  },
  faults: {
    term: "faults",
    description: "faults in force in the running stack (drills inject them; `stayup status` lists them)",
    load: () => import("./commands/faults/index.ts"),
  },
  roll: {
    term: "roll [options]",
    description:
      "rolling deploy of the running stack: the rebuilt bundle and instance settings, launch first",
    load: () => import("./commands/roll/index.ts"),
  },
  report: {
    term: "report [options] <file.json>",
    description: "render a saved drill report (the .json next to its HTML) as standalone HTML again",
    load: () => import("./commands/report/index.ts"),
  },
  synth: {
    term: "synth [options]",
    description: "render the stack description as CloudFormation (AWS CDK); needs no credentials",
    load: () => import("./commands/synth/index.ts"),
  },
  check: {
    term: "check [options]",
    description:
      "offline proof of the AWS stacks: cdk-nag, cfn-guard (Control Tower), stayup's lifecycle rules and cfn-lint for every environment",
    load: () => import("./commands/check/index.ts"),
  },
  cost: {
    term: "cost [options]",
    description: "monthly on-demand cost of the synthesized AWS stacks, per stack and per resource",
    load: () => import("./commands/cost/index.ts"),
  },
  diagram: {
    term: "diagram [options]",
    description: "the architecture as a Mermaid flowchart (GitHub renders it), on AWS or locally",
    load: () => import("./commands/diagram/index.ts"),
  },
  deploy: {
    term: "deploy [options]",
    description:
      "deploy the stacks to AWS one by one in the synthesized app's dependency order: network (then access, the SSH bastion, only with aws.bastion set), then by topology: load-balanced database → web (→ the secondary region's network, database, web → dns-failover); single-instance single-instance; ecs database → repository → cluster → service",
    load: () => import("./commands/deploy/index.ts"),
  },
  destroy: {
    term: "destroy [options]",
    description: "delete the stacks from AWS one by one in reverse dependency order",
    load: () => import("./commands/destroy/index.ts"),
  },
  outputs: {
    term: "outputs [options]",
    description: "print the deployed stack's outputs (load-balancer URL, public IP)",
    load: () => import("./commands/outputs/index.ts"),
  },
  ci: {
    term: "ci",
    description: "GitHub Actions: the stayup-ci stack (OIDC deploy roles) and what the workflows ask stayup",
    load: () => import("./commands/ci/index.ts"),
  },
};

/** The command the arguments name (`help <command>` names the next one), if any. */
export function requestedCommand(args: readonly string[]): string | undefined {
  const words = args.filter((a) => !a.startsWith("-"));
  const name = words[0] === "help" ? words[1] : words[0];
  return name !== undefined && Object.hasOwn(catalog, name) ? name : undefined;
}

/**
 * The program with every command loaded, or only `commandName`'s when it names one (what `main`
 * runs for a command); the others are then placeholders that list it in `stayup --help`.
 */
export async function buildProgram(commandName?: string): Promise<Command> {
  const wanted = commandName !== undefined && Object.hasOwn(catalog, commandName) ? commandName : undefined;
  const program = baseProgram();
  const terms = new Map<string, string>();
  const modules = await Promise.all(
    Object.entries(catalog).map(async ([name, entry]) =>
      wanted === undefined || name === wanted ? entry.load() : undefined,
    ),
  );
  Object.entries(catalog).forEach(([name, entry], i) => {
    const module = modules[i];
    if (module) module.register(program);
    else {
      program.command(name).description(entry.description);
      terms.set(name, entry.term);
    }
  });
  if (terms.size > 0) {
    const help = program.createHelp();
    program.configureHelp({ subcommandTerm: (cmd) => terms.get(cmd.name()) ?? help.subcommandTerm(cmd) });
  }
  addHelpExamples(program);
  hintAfterErrors(program, "stayup");
  return program;
}

/**
 * The program for help, the version, or a name it does not know: every command listed from the
 * catalog, none loaded (commander still suggests the closest name for a misspelt one).
 */
export function listingProgram(): Command {
  const program = baseProgram();
  for (const [name, entry] of Object.entries(catalog)) program.command(name).description(entry.description);
  const help = program.createHelp();
  program.configureHelp({
    subcommandTerm: (cmd) => catalog[cmd.name()]?.term ?? help.subcommandTerm(cmd),
  });
  hintAfterErrors(program, "stayup");
  return program;
}

/**
 * A usage error (unknown option, missing argument) prints the error and where the usage is, not
 * the whole help: the error is the line to read (issue 25, item 10).
 */
function hintAfterErrors(command: Command, name: string): void {
  // A misspelt command is an error too: its parent's help lists the commands.
  const what = command.commands.length > 0 ? "the commands and options" : "the options";
  command.showHelpAfterError(`  fix: see \`${name} --help\` for ${what}`);
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
  const name = requestedCommand(argv.slice(2));
  await runProgram(name === undefined ? listingProgram() : await buildProgram(name), argv);
}
