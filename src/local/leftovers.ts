import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { sleep } from "../shared/net.ts";
import {
  commandLineOf,
  environmentHas,
  isProcessAlive,
  isSameProcess,
  processGroupMembers,
} from "../shared/process-info.ts";
import { type ProcessFile, processFileName, type RecordedProcess } from "./processes.ts";
import { writeReplicationRecordFromLive } from "./redis/replication.ts";

// What a killed run left behind, found from its process registry (processes.ts) and stopped in
// an order that loses no data. Above both the registry and Redis replication: it needs each.

/** Known command line, or "" when it cannot be known (then nothing is stopped by mistake). */
const commandOf = (pid: number) => commandLineOf(pid) ?? "";

/** For a file of an older stayup, without start times: what each kind's command line shows. */
const expectedCommand: Record<RecordedProcess["kind"], RegExp> = {
  "redis-node": /redis-server/,
  sentinel: /redis-(server|sentinel)/,
  redis: /redis-server/,
  instance: /node/,
};

/** A recorded process still running: the recorded one itself, not a pid reused since. */
function stillOurs(p: RecordedProcess): boolean {
  if (p.processStart) return isSameProcess(p.pid, p.processStart);
  return isProcessAlive(p.pid) && expectedCommand[p.kind].test(commandOf(p.pid));
}

/**
 * The live members of a recorded group whose leader is gone (`sh -c` killed, its service still
 * running): the kernel hands out no pid while a group of that number has members, so the group
 * is still the one recorded; each member is checked to carry the instance's id anyway (its
 * environment), so a group that is not ours is never touched.
 */
const orphansOf = (p: RecordedProcess): number[] =>
  p.group && p.kind === "instance"
    ? processGroupMembers(p.pid).filter((pid) => environmentHas(pid, "STAYUP_INSTANCE_ID", p.name))
    : [];

/** A process a killed run left, and, for a group, the other live members stopped with it. */
export interface Leftover extends RecordedProcess {
  /** Live members of its group besides the recorded process (its service's children). */
  members: number[];
  /** The recorded process itself had exited (only members of its group were left). */
  leaderGone: boolean;
}

/** The recorded runtime still runs (the up lock keeps a second one out): nothing it started is left over. */
function runtimeRuns(recorded: ProcessFile): boolean {
  if (recorded.runtimePid === process.pid) return false;
  if (recorded.runtimeStart) return isSameProcess(recorded.runtimePid, recorded.runtimeStart);
  return isProcessAlive(recorded.runtimePid) && /node/.test(commandOf(recorded.runtimePid));
}

/**
 * Processes recorded by a runtime that is gone and that still run, each identified by its pid
 * and start (a file of an older stayup: by its command line); a service's process group with
 * them. Nothing else is ever returned: not the system's redis-server, not a pid reused since.
 */
export function findLeftovers(stateDir: string): Leftover[] {
  const file = path.join(stateDir, processFileName);
  if (!existsSync(file)) return [];
  let recorded: ProcessFile;
  try {
    recorded = JSON.parse(readFileSync(file, "utf8")) as ProcessFile;
  } catch {
    return [];
  }
  if (runtimeRuns(recorded)) return [];
  return recorded.processes.flatMap((p): Leftover[] => {
    if (stillOurs(p)) {
      const members = p.group ? processGroupMembers(p.pid).filter((pid) => pid !== p.pid) : [];
      return [{ ...p, members, leaderGone: false }];
    }
    if (isProcessAlive(p.pid)) return []; // its pid now names another process: not ours
    const orphans = orphansOf(p);
    return orphans.length > 0 ? [{ ...p, members: orphans, leaderGone: true }] : [];
  });
}

/** How a leftover is named to the user: kind, name, pid, and what of its group was stopped with it. */
export const describeLeftover = (p: Leftover): string => {
  const members = p.members.length > 0 ? `, its group's ${p.members.join(", ")}` : "";
  return `${p.kind} ${p.name} (pid ${p.pid}${p.leaderGone ? " gone" : ""}${members})`;
};

/**
 * Stops one leftover: SIGTERM, and SIGKILL for what still runs after `timeoutMs`. A recorded group
 * leader (a service started detached) is signalled as its group, so `sh -c`'s service goes too;
 * members whose leader is gone are signalled one by one (they were identified one by one).
 */
async function stopLeftover(p: Leftover, timeoutMs: number): Promise<void> {
  const leaderOurs = !p.leaderGone && stillOurs(p);
  const targets = [...(leaderOurs ? [p.pid] : []), ...p.members];
  const signal = (name: NodeJS.Signals) => {
    if (leaderOurs && p.group) {
      try {
        process.kill(-p.pid, name);
      } catch {
        // the group is gone
      }
    }
    for (const pid of targets) {
      try {
        process.kill(pid, name);
      } catch {
        // gone
      }
    }
  };
  signal("SIGTERM");
  const running = () =>
    targets.filter((pid) => isProcessAlive(pid)).length +
    (leaderOurs && p.group ? processGroupMembers(p.pid).length : 0);
  const deadline = Date.now() + timeoutMs;
  while (running() > 0 && Date.now() < deadline) await sleep(50);
  // Only what was identified above, never a pid that was not checked.
  if (running() > 0) signal("SIGKILL");
}

/**
 * Stops what a killed run left behind, without losing data: first each Redis node's role and
 * replication offset are recorded (so the next start picks the newest copy), then the Sentinels
 * stop (no failover while the nodes stop), then instances, then the nodes with SIGTERM (Redis
 * flushes its append-only file). Returns what was stopped.
 */
export async function stopLeftovers(stateDir: string, redisPassword: string): Promise<Leftover[]> {
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
    Promise.all(leftovers.filter((p) => kinds.includes(p.kind)).map((p) => stopLeftover(p, 10_000)));
  await stopAll(["sentinel"]);
  await stopAll(["instance"]);
  await stopAll(["redis-node", "redis"]);
  return leftovers;
}
