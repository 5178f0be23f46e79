import type { StackClient } from "../local/control-plane/client.ts";
import { StayupError } from "../shared/errors.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import type { DrillReport } from "./report.ts";

export interface KillInstanceOptions extends DrillOptions {
  signal: "KILL" | "TERM";
}

export const killInstanceDefaults: KillInstanceOptions = { ...drillDefaults, signal: "KILL" };

/**
 * Kills one healthy instance under steady traffic and measures what users saw, how long the group
 * took to have a replacement healthy and in rotation, and whether the counter stayed continuous.
 */
export async function killInstanceDrill(
  client: StackClient,
  opts: Partial<KillInstanceOptions> = {},
): Promise<DrillReport> {
  const o = { ...killInstanceDefaults, ...opts };
  const run = await DrillRun.start(client, o);
  const victim = run.before.instances.find((i) => i.healthy);
  if (!victim) {
    await run.finish();
    throw new StayupError(
      "no healthy instance to kill",
      "wait until `stayup status` shows healthy instances",
    );
  }
  const knownIds = new Set(run.before.instances.map((i) => i.id));
  const killedAt = Date.now();
  run.progress(`SIG${o.signal} → ${victim.id} (pid ${victim.pid}, ${victim.az})`);
  try {
    process.kill(victim.pid, `SIG${o.signal}`);
  } catch (error) {
    await run.finish();
    throw new StayupError(`could not signal pid ${victim.pid}: ${(error as Error).message}`);
  }
  // Recovered: the group is back at desired and a new instance, launched after the kill, is in rotation.
  const restored = run.capacityRestored(killedAt, run.before.group.desired);
  const recovery = await run.waitFor((events) => {
    const at = restored(events);
    if (at === undefined) return undefined;
    const replacement = events.find(
      (e) =>
        e.type === "target.healthy" &&
        !knownIds.has(e.instanceId) &&
        (e.region === undefined || e.region === run.before.region) &&
        Date.parse(e.time) >= killedAt,
    );
    return replacement?.type === "target.healthy" ? { at, replacement } : undefined;
  }, o.recoveryTimeoutMs);
  const recoverySeconds = recovery ? (recovery.at - killedAt) / 1000 : null;
  run.progress(
    recovery
      ? `replacement ${recovery.replacement.instanceId} healthy and in rotation after ${recoverySeconds?.toFixed(2)} s`
      : `no replacement healthy within ${o.recoveryTimeoutMs / 1000} s`,
  );
  const result = await run.finish();
  return run.report("kill-instance", result, recoverySeconds, {
    signal: `SIG${o.signal}`,
    victim: { id: victim.id, az: victim.az, pid: victim.pid },
    replacement: recovery ? { id: recovery.replacement.instanceId, az: recovery.replacement.az } : null,
  });
}
