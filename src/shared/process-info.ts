import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/**
 * `/proc/<pid>/stat`'s fields after the command name (which may hold blanks and parentheses):
 * index 0 is field 3 (state), so field N is at N - 3. Undefined: not Linux, or gone.
 */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** A zombie has exited (its parent has not reaped it yet): it holds no port and does nothing. */
const isZombie = (pid: number) => statFields(pid)?.[0] === "Z";

export const isProcessAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return !isZombie(pid);
};

/**
 * The command line of a running process (/proc on Linux, `ps` elsewhere), or undefined when it
 * cannot be known: a pid reused after a crash must not be mistaken for one of ours.
 */
export function commandLineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
  } catch {
    // not Linux, or gone
  }
  try {
    return execFileSync("ps", ["-o", "command=", "-p", String(pid)], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

/**
 * When the process `pid` started, as an opaque string (Linux: clock ticks since boot, field 22 of
 * /proc/<pid>/stat; elsewhere `ps -o lstart=`), or undefined when it cannot be known (gone). A pid
 * names one process only together with its start: a pid reused later has a later start, so a
 * recorded (pid, start) pair that still matches is the very process that was recorded.
 */
export function processStartOf(pid: number): string | undefined {
  const fields = statFields(pid);
  if (fields) return fields[19] ? `ticks:${fields[19]}` : undefined;
  try {
    const started = execFileSync("ps", ["-o", "lstart=", "-p", String(pid)], { encoding: "utf8" }).trim();
    return started ? `lstart:${started}` : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `pid` is still the process that was recorded with `start` (alive, same start). */
export const isSameProcess = (pid: number, start: string): boolean =>
  isProcessAlive(pid) && processStartOf(pid) === start;

/** The process group of `pid` (Linux), or undefined when unknown. */
export function processGroupOf(pid: number): number | undefined {
  const group = Number(statFields(pid)?.[2]);
  return Number.isInteger(group) && group > 0 ? group : undefined;
}

/**
 * The live members of process group `group` (Linux: every /proc entry whose group it is, zombies
 * left out); an empty list where /proc is missing.
 */
export function processGroupMembers(group: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      const fields = statFields(pid);
      return fields !== undefined && fields[0] !== "Z" && Number(fields[2]) === group;
    });
}

/** Whether the environment `pid` started with holds `name=value` (Linux, a process of this user). */
export function environmentHas(pid: number, name: string, value: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`${name}=${value}`);
  } catch {
    return false;
  }
}
