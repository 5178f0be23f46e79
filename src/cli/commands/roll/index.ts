import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import {
  instanceSettingRefusal,
  settingNamePattern,
} from "../../../local/rolling-deploy/instance-settings.ts";
import type { RollResult } from "../../../local/rolling-deploy/roll.ts";
import { StayupError } from "../../../shared/errors.ts";
import { stateDirOption } from "../../options.ts";

export interface RollOptions {
  stateDir: string;
  set: string[];
  json?: boolean;
}

/** NAME=value, checked as the control plane checks it (instance-settings.ts), before anything is sent. */
const parseSetting = (s: string): [string, string] => {
  const at = s.indexOf("=");
  if (at <= 0 || !settingNamePattern.test(s.slice(0, at))) {
    throw new StayupError(
      `--set ${s}: expected NAME=value with an upper-case NAME`,
      "e.g. --set LOG_LEVEL=debug",
    );
  }
  const [name, value] = [s.slice(0, at), s.slice(at + 1)];
  const refusal = instanceSettingRefusal(name, value);
  if (refusal) throw new StayupError(`--set ${name}: ${refusal.problem}`, refusal.fix);
  return [name, value];
};

const summary = (r: Omit<RollResult, "regions">): string =>
  r.rolledBack
    ? `rolled back to ${r.fromVersion}: ${r.reason}`
    : r.instancesReplaced.length === 0
      ? `nothing to roll: ${r.reason ?? "no instance running"}`
      : `${r.fromVersion} → ${r.toVersion}: ${r.instancesReplaced.length} instances replaced in ${r.durationSeconds.toFixed(1)} s`;

/** A roll's result for people: one line per region (the whole stack's when there is one region). */
export function describeRoll(result: RollResult): string[] {
  const regions = result.regions ?? [];
  if (regions.length <= 1) return [summary(result)];
  return regions.map((r) => {
    const what =
      r.outcome === "version-set"
        ? `no instance running; its next launch runs ${r.toVersion}`
        : r.outcome === "not-rolled"
          ? `not rolled: ${r.reason}`
          : summary(r);
    return `${r.role} ${r.region}: ${what}`;
  });
}

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
  else for (const line of describeRoll(result)) console.log(line);
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
