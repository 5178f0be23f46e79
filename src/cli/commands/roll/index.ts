import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import {
  instanceSettingRefusal,
  settingNamePattern,
} from "../../../local/rolling-deploy/instance-settings.ts";
import type { RollResult } from "../../../local/rolling-deploy/roll.ts";
import { StayupError } from "../../../shared/errors.ts";
import { sleep } from "../../../shared/net.ts";
import { type InterruptSignal, interruptSignals, trapInterruptSignals } from "../../interrupt-signals.ts";
import { stateDirOption } from "../../options.ts";

export interface RollOptions {
  stateDir: string;
  set: string[];
  json?: boolean;
  /** Stop the roll under way (another terminal's) with rollback, instead of starting one. */
  stop?: boolean;
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
 * A roll that a signal stops with rollback (SIGINT, SIGTERM, SIGHUP): the first asks the stack to
 * stop it and waits, saying so, until the stack is back on the version the roll started from; a
 * second exits at once, and the stack still rolls back by itself (the roll's requester is gone,
 * see roll-route.ts). `what` names the command in what it says. Resolves with the roll's result and
 * the signal that stopped it, if one did.
 */
export async function rollStoppable(
  client: StackClient,
  settings: Record<string, string>,
  options: { keepSettings?: boolean; what?: string } = {},
): Promise<{ result: RollResult; interrupted?: InterruptSignal }> {
  const what = options.what ?? "stayup roll";
  const id = randomUUID();
  let interrupted: InterruptSignal | undefined;
  let stopping: Promise<RollResult | undefined> | undefined;
  const rolling = client.roll(settings, { keepSettings: options.keepSettings, id });
  let answered = false;
  rolling.then(
    () => (answered = true),
    () => (answered = true),
  );
  const removeHandlers = trapInterruptSignals(
    (signal) => {
      interrupted = signal;
      process.stderr.write(
        `\ninterrupted (${signal}): stopping the roll and rolling back to the version it started from (${signal} again to leave that to the stack)...\n`,
      );
      // Under way, the roll's own answer is the stop's; completed just before, the stop rolls it
      // back and answers that. Not taken by the stack yet (its request still on the way: 409), the
      // stop is asked again until the stack has it or has answered the roll: once answered, the
      // stack's answer to the stop is final.
      stopping = (async () => {
        for (;;) {
          const wasAnswered = answered;
          const stopped = await client.stopRoll({ id, reason: `${what} interrupted (${signal})` });
          if (stopped || wasAnswered) return stopped;
          await Promise.race([sleep(200), rolling.catch(() => undefined)]);
        }
      })().catch((error: unknown) => {
        process.stderr.write(`stopping the roll failed: ${(error as Error).message}\n`);
        return undefined;
      });
    },
    (signal) => {
      process.stderr.write(
        `\n${signal} again: exiting now; the stack rolls back by itself, as its requester is gone (see \`stayup status\`)\n`,
      );
    },
  );
  try {
    const result = await rolling;
    const stopped = stopping ? await stopping : undefined;
    return { result: stopped ?? result, ...(interrupted ? { interrupted } : {}) };
  } finally {
    removeHandlers();
  }
}

/** What an interrupted roll ended as: stopped and back, or over before the stop came. */
export function interruptedRollLine(what: string, signal: InterruptSignal, result: RollResult): string {
  return result.stopped
    ? `${what} interrupted (${signal}): the roll stopped, the stack back on ${result.fromVersion}`
    : `${what} interrupted (${signal}): the roll had ended before it could be stopped (${result.rolledBack ? `rolled back to ${result.fromVersion}` : `the stack runs ${result.toVersion}`})`;
}

/** `stayup roll --stop`: the roll under way (another terminal's, say) stopped with rollback. */
async function stopRoll(opts: RollOptions): Promise<RollResult | undefined> {
  const client = StackClient.require(opts.stateDir);
  process.stderr.write("stopping the roll under way and rolling back to the version it started from...\n");
  const result = await client.stopRoll({ reason: "`stayup roll --stop`" });
  if (!result) {
    process.stderr.write(
      "no roll is under way: nothing to stop (`stayup status` shows the version running)\n",
    );
    return undefined;
  }
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else for (const line of describeRoll(result)) console.log(line);
  return result;
}

/**
 * `stayup roll`: a rolling deploy of the running stack to the current service bundle with the given
 * instance settings (instance refresh: launch first, then drain an old one; rolled back if the new
 * version crashes or never turns healthy).
 */
export async function roll(opts: RollOptions): Promise<RollResult | undefined> {
  if (opts.stop) {
    if (opts.set.length > 0)
      throw new StayupError(
        "--stop stops the roll under way: it takes no --set",
        "drop --set, or drop --stop",
      );
    return stopRoll(opts);
  }
  const settings = Object.fromEntries(opts.set.map(parseSetting));
  const client = StackClient.require(opts.stateDir);
  process.stderr.write(
    "rolling: rebuilding the service bundle, then replacing instances launch first (Ctrl-C stops it and rolls back)...\n",
  );
  const { result, interrupted } = await rollStoppable(client, settings);
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else for (const line of describeRoll(result)) console.log(line);
  if (interrupted) {
    process.stderr.write(`${interruptedRollLine("stayup roll", interrupted, result)}\n`);
    process.exitCode = interruptSignals[interrupted];
  } else if (result.rolledBack) process.exitCode = 1;
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
    .option("--stop", "stop the roll under way with rollback (back to the version it started from)")
    .action(async (opts: RollOptions) => {
      await roll(opts);
    });
}
