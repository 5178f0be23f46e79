import type { StackClient } from "../local/control-plane/client.ts";
import type { TimedStackEvent } from "../local/events/bus.ts";
import { StayupError } from "../shared/errors.ts";
import { sleep } from "../shared/net.ts";
import type { DrillReport } from "./report.ts";
import { SteadyTraffic } from "./traffic.ts";

export interface KillInstanceOptions {
  signal: "KILL" | "TERM";
  /** Requests per second during the drill. */
  rate: number;
  /** Traffic before the fault, to see the steady state. */
  warmupMs: number;
  /** Traffic after recovery, to see the recovered state. */
  cooldownMs: number;
  /** Give up waiting for recovery after this long. */
  recoveryTimeoutMs: number;
  onProgress?: (message: string) => void;
}

export const killInstanceDefaults: KillInstanceOptions = {
  signal: "KILL",
  rate: 200,
  warmupMs: 1500,
  cooldownMs: 1500,
  recoveryTimeoutMs: 30_000,
};

/**
 * Kills one healthy instance under steady traffic and measures what users saw, how long the group
 * took to have a replacement healthy and in rotation, and whether the counter stayed continuous.
 */
export async function killInstanceDrill(
  client: StackClient,
  opts: Partial<KillInstanceOptions> = {},
): Promise<DrillReport> {
  const o = { ...killInstanceDefaults, ...opts };
  const progress = o.onProgress ?? (() => undefined);
  const before = await client.status();
  const victim = before.instances.find((i) => i.healthy);
  if (!victim)
    throw new StayupError(
      "no healthy instance to kill",
      "wait until `stayup status` shows healthy instances",
    );
  const knownIds = new Set(before.instances.map((i) => i.id));

  const abort = new AbortController();
  const events: TimedStackEvent[] = [];
  let notify: () => void = () => undefined;
  const reading = (async () => {
    for await (const e of client.events(abort.signal)) {
      events.push(e);
      notify();
    }
  })().catch(() => undefined);

  const maxDurationMs = o.warmupMs + o.recoveryTimeoutMs + o.cooldownMs + 5000;
  const traffic = new SteadyTraffic(client.state.listener, {
    rate: o.rate,
    maxDurationMs,
    maxRequests: Math.ceil((o.rate * maxDurationMs) / 1000),
  });
  traffic.start();
  progress(`sending ${o.rate} requests/s to ${client.state.listener}`);
  await sleep(o.warmupMs);

  const killedAt = Date.now();
  progress(`SIG${o.signal} → ${victim.id} (pid ${victim.pid}, ${victim.az})`);
  try {
    process.kill(victim.pid, `SIG${o.signal}`);
  } catch (error) {
    await traffic.stop();
    abort.abort();
    throw new StayupError(`could not signal pid ${victim.pid}: ${(error as Error).message}`);
  }

  // Recovered: a new instance, launched after the kill, is healthy and the group is at desired again.
  const desired = before.group.desired;
  const recovered = () => {
    const healthy = new Set<string>([...before.instances.filter((i) => i.healthy).map((i) => i.id)]);
    let replacement: TimedStackEvent | undefined;
    for (const e of events) {
      if (e.type === "target.healthy") {
        healthy.add(e.instanceId);
        if (!knownIds.has(e.instanceId) && Date.parse(e.time) >= killedAt - 5) replacement ??= e;
      }
      if (
        e.type === "target.unhealthy" ||
        e.type === "target.deregistered" ||
        e.type === "instance.terminated"
      ) {
        healthy.delete(e.instanceId);
      }
    }
    return replacement && healthy.size >= desired ? replacement : undefined;
  };
  let replacement = recovered();
  const deadline = killedAt + o.recoveryTimeoutMs;
  while (!replacement && Date.now() < deadline) {
    await Promise.race([new Promise<void>((r) => (notify = r)), sleep(100)]);
    replacement = recovered();
  }
  const recoverySeconds = replacement ? (Date.parse(replacement.time) - killedAt) / 1000 : null;
  if (replacement && replacement.type === "target.healthy") {
    progress(
      `replacement ${replacement.instanceId} healthy and in rotation after ${recoverySeconds?.toFixed(2)} s`,
    );
  } else {
    progress(`no replacement healthy within ${o.recoveryTimeoutMs / 1000} s`);
  }

  await sleep(o.cooldownMs);
  const result = await traffic.stop();
  abort.abort();
  await reading;
  const replacementEvent = replacement?.type === "target.healthy" ? replacement : undefined;
  return {
    drill: "kill-instance",
    requests: result.requests,
    failed: result.failed,
    recoverySeconds,
    counterContinuous: result.counterContinuous,
    rate: o.rate,
    durationSeconds: result.durationSeconds,
    failures: result.failures,
    servedBy: result.servedBy,
    counter: { first: result.firstCount, last: result.lastCount },
    signal: `SIG${o.signal}`,
    victim: { id: victim.id, az: victim.az, pid: victim.pid },
    replacement: replacementEvent ? { id: replacementEvent.instanceId, az: replacementEvent.az } : null,
    counterViolations: result.counterViolations,
  };
}
