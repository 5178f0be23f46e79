import path from "node:path";
import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import type { FaultInForce } from "../../../local/faults/registry.ts";
import { stateDirOption } from "../../options.ts";

export interface FaultsClearOptions {
  stateDir: string;
  json?: boolean;
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
  faults
    .command("clear")
    .description("restore every fault in force: impaired zones, regions down, instance and Redis faults")
    .addOption(stateDirOption())
    .option("--json", "print what was cleared as JSON")
    .action(async (opts: FaultsClearOptions) => {
      await faultsClear(opts);
    });
}
