import path from "node:path";
import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import type { FaultInForce } from "../../../local/faults/registry.ts";
import { stateDirOption } from "../../options.ts";

export interface FaultsClearOptions {
  stateDir: string;
  json?: boolean;
}

export type FaultsListOptions = FaultsClearOptions;

/** Faults in force, for people: each with its age and owner, then what clears them (`status` prints the same). */
export function describeFaults(faults: readonly FaultInForce[]): string[] {
  if (faults.length === 0) return [];
  return [
    `FAULTS IN FORCE (${faults.length}):`,
    ...faults.map((f) => {
      const owner = f.owner
        ? ` (drill ${f.owner.drill ?? "?"}${f.owner.pid ? `, pid ${f.owner.pid}` : ""}: cleared when it ends)`
        : "";
      return `  ${f.description}, since ${f.since}${owner}`;
    }),
    `clear them: ${faults[0]?.clear ?? "stayup faults clear"}`,
  ];
}

/** `stayup faults`: the faults in force in the running stack (none when no stack runs), and what clears them. */
export async function faultsList(opts: FaultsListOptions): Promise<FaultInForce[]> {
  const client = StackClient.find(opts.stateDir);
  const inForce = client ? await client.faults() : [];
  if (opts.json) console.log(JSON.stringify({ inForce }, null, 2));
  else if (!client) console.log(`no stack is running from ${path.resolve(opts.stateDir)}: no fault in force`);
  else if (inForce.length === 0) console.log("no fault in force");
  else for (const line of describeFaults(inForce)) console.log(line);
  return inForce;
}

/**
 * `stayup faults clear`: restores every fault in force in the running stack (an impaired zone, a
 * region down, an instance or Redis fault), whatever left it: a drill interrupted, a fault injected
 * by hand. Resolves once the stack has restored them.
 */
export async function faultsClear(opts: FaultsClearOptions): Promise<FaultInForce[]> {
  const client = StackClient.find(opts.stateDir);
  if (!client) {
    // Faults live in the running stack: with none running, none is in force (safe in a cleanup, as `down`).
    if (opts.json) console.log(JSON.stringify({ cleared: [], inForce: [] }, null, 2));
    else console.log(`no stack is running from ${path.resolve(opts.stateDir)}: no fault in force`);
    return [];
  }
  const cleared = await client.clearFaults();
  const left = await client.faults();
  if (opts.json) console.log(JSON.stringify({ cleared, inForce: left }, null, 2));
  else {
    if (cleared.length === 0) console.log("no fault was in force");
    for (const f of cleared) console.log(`cleared: ${f.description}`);
    for (const f of left)
      console.log(`still in force (restoring it failed; see stayup status): ${f.description}`);
  }
  if (left.length > 0) process.exitCode = 1;
  return cleared;
}

export function register(program: Command): void {
  const faults = program
    .command("faults")
    .description("faults in force in the running stack (drills inject them; `stayup status` lists them)");
  // `stayup faults` alone lists them (the default subcommand).
  faults
    .command("list", { isDefault: true })
    .description("list the faults in force and what clears them (the default)")
    .addOption(stateDirOption())
    .option("--json", "print them as JSON")
    .action(async (opts: FaultsListOptions) => {
      await faultsList(opts);
    });
  faults
    .command("clear")
    .description("restore every fault in force: impaired zones, regions down, instance and Redis faults")
    .addOption(stateDirOption())
    .option("--json", "print what was cleared as JSON")
    .action(async (opts: FaultsClearOptions) => {
      await faultsClear(opts);
    });
}
