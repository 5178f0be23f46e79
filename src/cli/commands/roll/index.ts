import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import type { RollResult } from "../../../local/rolling-deploy/roll.ts";
import { StayupError } from "../../../shared/errors.ts";
import { stateDirOption } from "../../options.ts";

export interface RollOptions {
  stateDir: string;
  set: string[];
  json?: boolean;
}

const parseSetting = (s: string): [string, string] => {
  const at = s.indexOf("=");
  if (at <= 0 || !/^[A-Z][A-Z0-9_]*$/.test(s.slice(0, at))) {
    throw new StayupError(
      `--set ${s}: expected NAME=value with an upper-case NAME`,
      "e.g. --set LOG_LEVEL=debug",
    );
  }
  return [s.slice(0, at), s.slice(at + 1)];
};

/**
 * `stayup roll`: a rolling deploy of the running stack to the current service bundle with the given
 * instance settings (instance refresh: launch first, then drain an old one; rolled back if the new
 * version crashes or never turns healthy).
 */
export async function roll(opts: RollOptions): Promise<RollResult> {
  const settings = Object.fromEntries(opts.set.map(parseSetting));
  const client = StackClient.require(opts.stateDir);
  process.stderr.write("rolling: rebuilding the service bundle, then replacing instances launch first...\n");
  const result = await client.roll(settings);
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else if (result.rolledBack) console.log(`rolled back to ${result.fromVersion}: ${result.reason}`);
  else if (result.instancesReplaced.length === 0)
    console.log(`nothing to roll: ${result.reason ?? "same version"}`);
  else
    console.log(
      `${result.fromVersion} → ${result.toVersion}: ${result.instancesReplaced.length} instances replaced in ${result.durationSeconds.toFixed(1)} s`,
    );
  if (result.rolledBack) process.exitCode = 1;
  return result;
}

export function register(program: Command): void {
  program
    .command("roll")
    .description(
      "rolling deploy of the running stack: the rebuilt bundle and instance settings, launch first",
    )
    .addOption(stateDirOption())
    .option(
      "--set <NAME=value>",
      "an instance setting of the new version (repeatable); STAYUP_BROKEN=crash|unhealthy makes a broken one",
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option("--json", "the roll's result as JSON")
    .action(async (opts: RollOptions) => {
      await roll(opts);
    });
}
