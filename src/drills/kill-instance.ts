import type { TimedStackEvent } from "../local/events/bus.ts";
import { Option } from "commander";
import type { StackClient } from "../local/control-plane/client.ts";
import { StayupError } from "../shared/errors.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import {
  basicTargets,
  counterTarget,
  type DrillReport,
  type DrillTarget,
  recoveredTarget,
} from "./report.ts";
import { defineDrill } from "./module.ts";
import { chooseRunInstance, instanceOption, victimOf } from "./victim.ts";

export interface KillInstanceOptions extends DrillOptions {
  signal: "KILL" | "TERM";
  /** The instance to kill; default: a healthy one at random. */
  instance?: string;
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
  const victim = await chooseRunInstance(run, o.instance);
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
  run.mark("fault", `SIG${o.signal} → ${victim.id} in ${victim.az}`, killedAt);
  try {
    process.kill(victim.pid, `SIG${o.signal}`);
  } catch (error) {
    await run.finish();
    throw new StayupError(`could not signal pid ${victim.pid}: ${(error as Error).message}`);
  }
  // Recovered: the group is back at desired and a new instance, launched after the kill, is in rotation.
  const restored = run.capacityRestored(killedAt, run.before.group.desired);
  const recovery = await run.waitFor((events) => {
    // The single instance has no target group: it is back when the address points at a new instance.
    const viaAddress = singleInstanceRecovery(events, knownIds, killedAt);
    if (viaAddress) return viaAddress;
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
  if (recovery) {
    // A replacement in rotation (its target.healthy event), or the single instance's address answering.
    const inRotationAt =
      "time" in recovery.replacement ? Date.parse(String(recovery.replacement.time)) : recovery.at;
    run.mark("recovery", `replacement ${recovery.replacement.instanceId} in rotation`, inRotationAt);
    if (recovery.at !== inRotationAt)
      run.mark("recovery", `capacity back to ${run.before.group.desired}`, recovery.at);
  }
  run.progress(
    recovery
      ? `replacement ${recovery.replacement.instanceId} healthy and in rotation after ${recoverySeconds?.toFixed(2)} s`
      : `no replacement healthy within ${o.recoveryTimeoutMs / 1000} s`,
  );
  const result = await run.finish();
  return run.report(
    "kill-instance",
    result,
    recoverySeconds,
    {
      signal: `SIG${o.signal}`,
      victim: { id: victim.id, az: victim.az, pid: victim.pid },
      replacement: recovery ? { id: recovery.replacement.instanceId, az: recovery.replacement.az } : null,
      ...(run.before.singleInstance
        ? {
            topology: "single-instance",
            note: "a single instance cannot avoid downtime: the address answers nothing until the replacement has booted, attached the volume and associated the address",
          }
        : {}),
    },
    killInstanceTargets,
  );
}

/**
 * The targets: the shared ones; a single instance's downtime is expected and reported (seed 003),
 * so there it passes if it came back and lost nothing.
 */
export const killInstanceTargets = (r: DrillReport): DrillTarget[] =>
  r.topology === "single-instance" ? [recoveredTarget(r), counterTarget(r)] : basicTargets(r);

export const killInstance = defineDrill<{ signal: "KILL" | "TERM"; instance?: string }>({
  name: "kill-instance",
  description: "kill one healthy instance under steady traffic; report failures, recovery time and counter",
  topologies: {
    "load-balanced": true,
    // Seed 003: the address answers nothing until the replacement is up; the downtime is reported.
    "single-instance": true,
    // The victim is one of the service's tasks; the scheduler starts its replacement.
    ecs: true,
  },
  options: () => [
    new Option("-s, --signal <signal>", "signal sent to the instance")
      .choices(["KILL", "TERM"])
      .default("KILL"),
    instanceOption(),
  ],
  run: ({ client, rate, onProgress, harness, options }) =>
    killInstanceDrill(client, {
      ...harness,
      signal: options.signal,
      ...victimOf(options),
      rate,
      onProgress,
    }),
  details: (report) => {
    const victim = report.victim as { id: string; az: string };
    const replacement = report.replacement as { id: string; az: string } | null;
    return [
      `killed               ${victim.id} in ${victim.az} with ${report.signal}`,
      `replacement          ${replacement ? `${replacement.id} in ${replacement.az}` : "none"}`,
    ];
  },
  passed: (r) => killInstanceTargets(r).every((t) => t.passed),
});

/** Seed 003: recovered when the stable address is associated with an instance launched after the kill. */
function singleInstanceRecovery(
  events: readonly TimedStackEvent[],
  knownIds: Set<string>,
  killedAt: number,
): { at: number; replacement: { instanceId: string; az: string } } | undefined {
  const associated = events.find(
    (e) => e.type === "address.associated" && !knownIds.has(e.instanceId) && Date.parse(e.time) >= killedAt,
  );
  if (associated?.type !== "address.associated") return undefined;
  const launched = events.find(
    (e) => e.type === "instance.launched" && e.instanceId === associated.instanceId,
  );
  return {
    at: Date.parse(associated.time),
    replacement: {
      instanceId: associated.instanceId,
      az: launched?.type === "instance.launched" ? launched.az : "",
    },
  };
}
