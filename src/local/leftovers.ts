import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { sleep } from "../shared/net.ts";
import { commandLineOf, isProcessAlive } from "../shared/process-info.ts";
import { type ProcessFile, processFileName, type RecordedProcess } from "./processes.ts";
import { writeReplicationRecordFromLive } from "./redis/replication.ts";

// What a killed run left behind, found from its process registry (processes.ts) and stopped in
// an order that loses no data. Above both the registry and Redis replication: it needs each.

const isAlive = isProcessAlive;
/** Known command line, or "" when it cannot be known (then nothing is stopped by mistake). */
const commandOf = (pid: number) => commandLineOf(pid) ?? "";

const expectedCommand: Record<RecordedProcess["kind"], RegExp> = {
  "redis-node": /redis-server/,
  sentinel: /redis-(server|sentinel)/,
  redis: /redis-server/,
  instance: /node/,
};

/** Processes recorded by a runtime that is gone and that are still running (checked by command). */
export function findLeftovers(stateDir: string): RecordedProcess[] {
  const file = path.join(stateDir, processFileName);
  if (!existsSync(file)) return [];
  let recorded: ProcessFile;
  try {
    recorded = JSON.parse(readFileSync(file, "utf8")) as ProcessFile;
  } catch {
    return [];
  }
  if (recorded.runtimePid !== process.pid && isAlive(recorded.runtimePid)) {
    // The runtime that started them still runs (the up lock keeps a second one out): not leftovers.
    if (/node/.test(commandOf(recorded.runtimePid))) return [];
  }
  return recorded.processes.filter((p) => isAlive(p.pid) && expectedCommand[p.kind].test(commandOf(p.pid)));
}

async function stopPid(pid: number, timeoutMs: number): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) process.kill(pid, "SIGKILL");
}

/**
 * Stops what a killed run left behind, without losing data: first each Redis node's role and
 * replication offset are recorded (so the next start picks the newest copy), then the Sentinels
 * stop (no failover while the nodes stop), then instances, then the nodes with SIGTERM (Redis
 * flushes its append-only file). Returns what was stopped.
 */
export async function stopLeftovers(stateDir: string, redisPassword: string): Promise<RecordedProcess[]> {
  const leftovers = findLeftovers(stateDir);
  if (leftovers.length === 0) return [];
  const nodes = leftovers.filter((p) => p.kind === "redis-node");
  const byRegion = new Map<string, RecordedProcess[]>();
  for (const n of nodes) {
    if (!n.dir) continue;
    const dataDir = path.dirname(n.dir);
    byRegion.set(dataDir, [...(byRegion.get(dataDir) ?? []), n]);
  }
  for (const [dataDir, regionNodes] of byRegion) {
    await writeReplicationRecordFromLive(
      dataDir,
      regionNodes.map((n) => ({ name: n.name, port: n.port ?? 0 })),
      redisPassword,
    );
  }
  const stopAll = (kinds: RecordedProcess["kind"][]) =>
    Promise.all(leftovers.filter((p) => kinds.includes(p.kind)).map((p) => stopPid(p.pid, 10_000)));
  await stopAll(["sentinel"]);
  await stopAll(["instance"]);
  await stopAll(["redis-node", "redis"]);
  return leftovers;
}
