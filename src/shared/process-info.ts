import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export const isProcessAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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
