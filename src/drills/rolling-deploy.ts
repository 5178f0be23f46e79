import { randomUUID } from "node:crypto";
import { Option } from "commander";
import type { StackClient } from "../local/control-plane/client.ts";
import type { TimedStackEvent } from "../local/events/bus.ts";
import type { RollResult } from "../local/rolling-deploy/roll.ts";
import type { StackStatus } from "../local/runtime.ts";
import { sleep } from "../shared/net.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import { defineDrill } from "./module.ts";
import type { DrillReport } from "./report.ts";

export interface RollingDeployOptions extends DrillOptions {
  /** Deploy a version broken on purpose (STAYUP_BROKEN) to see the rollback. */
  broken?: "crash" | "unhealthy";
}

/**
 * Rolls a new version (the same bundle with a new deploy setting, so a new version) under steady
 * traffic: every instance in service is replaced launch first, and clients should see nothing.
 * With `broken`, the new version crashes or never turns healthy and the roll is rolled back.
 */
export async function rollingDeployDrill(
  client: StackClient,
  opts: Partial<RollingDeployOptions> = {},
): Promise<DrillReport> {
  const o = { ...drillDefaults, ...opts };
  const run = await DrillRun.start(client, o);
  const settings: Record<string, string> = { STAYUP_DEPLOY_ID: new Date().toISOString() };
  if (o.broken) settings.STAYUP_BROKEN = o.broken;
  run.progress(`rolling to a new version${o.broken ? ` broken on purpose (${o.broken})` : ""}`);
  const rollAt = Date.now();
  run.mark("fault", `roll to a new version${o.broken ? ` (broken: ${o.broken})` : ""} started`, rollAt);
  // Interrupted at any point from here, during the roll or after it, the roll is stopped with
  // rollback (or, over already, rolled back): the stack ends on the version found.
  const rollId = randomUUID();
  const request = new AbortController();
  const rolling = client.roll(settings, { id: rollId, signal: request.signal });
  rolling.catch(() => undefined);
  run.undoOnInterrupt("its roll", () =>
    stopRoll(run, client, { id: rollId, request, rolling, reason: o.interruption?.reason }),
  );
  const roll = await rolling.catch(async (error: unknown) => {
    // Interrupted: the undo above owns the roll from here.
    if (!o.interruption?.interrupted) await run.finish();
    throw error;
  });
  // Interrupted as it answered: the undo has it (the drill's caller stopped listening).
  o.interruption?.throwIfInterrupted();
  run.progress(
    roll.rolledBack
      ? `rolled back to ${roll.fromVersion}: ${roll.reason}`
      : `${roll.toVersion}: ${roll.instancesReplaced.length} instances replaced in ${roll.durationSeconds.toFixed(1)} s`,
  );
  await markRoll(run, rollAt, Date.now(), roll.rolledBack);
  const result = await run.finish();
  return run.report("rolling-deploy", result, roll.rolledBack ? null : roll.durationSeconds, {
    instancesReplaced: roll.instancesReplaced.length,
    durationSeconds: roll.durationSeconds,
    rolledBack: roll.rolledBack,
    fromVersion: roll.fromVersion,
    toVersion: roll.toVersion,
    ...(roll.reason ? { reason: roll.reason } : {}),
    ...(o.broken ? { broken: o.broken } : {}),
    ...(run.before.singleInstance
      ? {
          topology: "single-instance",
          note: "a single instance cannot overlap two versions on one volume: the old one stops before the new one starts, and clients see that gap",
        }
      : {}),
  });
}

/** Whether the stack runs `version` and nothing else: its group set to it, every instance on it. */
export function onVersion(status: Pick<StackStatus, "version" | "instances">, version: string): boolean {
  return (
    status.version === version &&
    status.instances.length > 0 &&
    status.instances.every((i) => i.version === version)
  );
}

/** A rollback under way, in one line: how many instances run the version found, how many not yet. */
export function rollbackProgress(status: Pick<StackStatus, "version" | "instances">, found: string): string {
  const on = status.instances.filter((i) => i.version === found);
  const other = status.instances.length - on.length;
  return `rolling back to ${found}: ${on.length} instance(s) on it (${on.filter((i) => i.healthy).length} healthy)${other > 0 ? `, ${other} of the new version still to go` : ""}`;
}

/** How long an interrupted drill waits for its roll's rollback (the stack bounds it: 2 min a region). */
const ROLLBACK_WAIT_MS = 300_000;

/**
 * The undo of an interrupted drill's roll: asks the stack to stop it with rollback (POST
 * /roll/stop naming it: under way, it is stopped; completed, and nothing rolled since, it is rolled
 * back) and waits, saying how far the rollback got, until the stack runs the version the drill
 * found on every instance. A roll the stack has not taken yet is stopped by closing its request
 * (the stack stops a roll whose requester is gone). Throws when the stack is not back.
 */
async function stopRoll(
  run: DrillRun,
  client: StackClient,
  roll: { id: string; request: AbortController; rolling: Promise<RollResult>; reason?: string },
): Promise<string> {
  const found = run.before.version;
  if (!found) throw new Error("the stack does not say which version it ran: see `stayup status`");
  run.progress(`stopping the roll and rolling back to the version found (${found})...`);
  const deadline = Date.now() + ROLLBACK_WAIT_MS;
  let done = false;
  const watching = (async () => {
    let said = "";
    while (!done && Date.now() < deadline) {
      await sleep(1000);
      const status = await client.status().catch(() => undefined);
      if (done || !status) continue;
      const line = rollbackProgress(status, found);
      if (line !== said) run.progress(line);
      said = line;
    }
  })();
  try {
    const stopped = await client
      .stopRoll({ id: roll.id, reason: `the drill was interrupted (${roll.reason ?? "interrupted"})` })
      .catch(() => undefined);
    // None under way: not taken yet (its closed request stops it at once), or over already.
    roll.request.abort();
    const result = stopped ?? (await roll.rolling.catch(() => undefined));
    for (;;) {
      const status = await client.status();
      if (onVersion(status, found)) break;
      if (Date.now() > deadline)
        throw new Error(
          `the stack runs ${status.version}${result && !result.stopped && !result.rolledBack ? " (the roll had completed before it could be stopped)" : ""}, not the version found ${found}`,
        );
      await sleep(500);
    }
    return `stopped its roll: back on ${found}, every instance on it`;
  } finally {
    done = true;
    await watching;
  }
}

/**
 * The roll's recovery markers, from its events until it answered: each instance it launched in
 * rotation (a single instance: given the address), and the roll completed or rolled back.
 */
async function markRoll(
  run: DrillRun,
  rollAt: number,
  answeredAt: number,
  rolledBack: boolean,
): Promise<void> {
  const ours = (e: TimedStackEvent) =>
    (e.region === undefined || e.region === run.before.region) &&
    Date.parse(e.time) >= rollAt &&
    Date.parse(e.time) <= answeredAt;
  // The roll answered when it was over; its last event may still be on its way to us.
  const end = await run.waitFor(
    (events) =>
      events.find((e) => ours(e) && e.type === (rolledBack ? "roll.rolled-back" : "roll.completed")),
    10_000,
  );
  const before = new Set(run.before.instances.map((i) => i.id));
  const marked = new Set<string>();
  for (const e of run.events) {
    if (!ours(e)) continue;
    if ((e.type === "target.healthy" || e.type === "address.associated") && !before.has(e.instanceId)) {
      if (marked.has(e.instanceId)) continue;
      marked.add(e.instanceId);
      run.mark("recovery", `${e.instanceId} in rotation`, Date.parse(e.time));
    }
  }
  if (end?.type === "roll.completed")
    run.mark("recovery", `roll completed: ${end.instancesReplaced} replaced`, Date.parse(end.time));
  if (end?.type === "roll.rolled-back")
    run.mark("recovery", `rolled back to ${end.toVersion}: ${end.reason}`, Date.parse(end.time));
}

export const rollingDeploy = defineDrill<{ broken?: "crash" | "unhealthy" }>({
  name: "rolling-deploy",
  description:
    "roll a new version under steady traffic (launch first, then drain); report failures and replacements",
  topologies: {
    "load-balanced": true,
    // Stop first, then start: the downtime is reported.
    "single-instance": true,
    ecs: {
      unsupported:
        "the roll replaces the web group's instances, and in this topology the service's tasks are not among them: the local ECS service has no deployments yet",
      instead: "run `stayup drill rolling-deploy --topology load-balanced`",
    },
  },
  options: () => [
    new Option("--broken <how>", "deploy a broken version to see the rollback").choices([
      "crash",
      "unhealthy",
    ]),
  ],
  run: ({ client, rate, onProgress, harness, options }) =>
    rollingDeployDrill(client, { ...harness, rate, onProgress, broken: options.broken }),
  details: (report) => [
    `version              ${report.fromVersion} → ${report.toVersion}${report.rolledBack ? " (ROLLED BACK)" : ""}`,
    `instances replaced   ${report.instancesReplaced}`,
    ...(report.reason ? [`reason               ${report.reason}`] : []),
  ],
  // Nothing failed for clients, the count continued, and the roll ended as asked: done, or rolled back
  // when the version was broken on purpose.
  // (A single instance's downtime is reported, not failed: it cannot roll without one.)
  passed: (report) =>
    // A roll that should succeed must finish (its recovery is the roll's duration).
    (report.recoverySeconds !== null || report.broken !== undefined) &&
    (report.failed === 0 || report.topology === "single-instance") &&
    report.counterContinuous &&
    report.rolledBack === (report.broken !== undefined),
});
