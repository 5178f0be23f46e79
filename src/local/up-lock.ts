import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import path from "node:path";
import { StayupError } from "../shared/errors.ts";
import { writePrivateFileAtomic } from "../shared/private-file.ts";
import { commandLineOf, isProcessAlive } from "../shared/process-info.ts";

export const upLockFileName = "up.lock";

const holderAlive = (pid: number): boolean => {
  if (!isProcessAlive(pid)) return false;
  // A pid reused by something else after a crash does not hold the lock; unknown: assume it does.
  const command = commandLineOf(pid);
  return command === undefined || /node/.test(command);
};

/**
 * One `stayup up` per state folder. The lock file names its holder's pid: a holder that is gone
 * (killed with SIGKILL) does not block the next run, and a live one makes a second `up` fail at
 * once with a clear error. (A pid lock, not an mtime lock such as proper-lockfile's: those block
 * the next run for their staleness period after a SIGKILL.)
 */
export class UpLock {
  private released = false;

  private constructor(readonly file: string) {
    process.once("exit", () => this.release());
  }

  static acquire(stateDir: string): UpLock {
    mkdirSync(stateDir, { recursive: true });
    const file = path.join(stateDir, upLockFileName);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, "wx", 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return new UpLock(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const holder = UpLock.holder(file);
      if (holder !== undefined && holderAlive(holder)) {
        throw new StayupError(
          `another \`stayup up\` is already running from ${path.resolve(stateDir)} (pid ${holder})`,
          "use that stack (`stayup status`), stop it with `stayup down`, or pass another --state-dir",
        );
      }
      rmSync(file, { force: true }); // left by a run that was killed: not held
    }
    throw new StayupError(`could not take the lock ${file}`, "try again");
  }

  /**
   * The detached child takes over the lock its parent (`stayup up --detach`) took, only if the
   * parent still holds it.
   */
  static adopt(stateDir: string, fromPid: number): UpLock {
    const file = path.join(stateDir, upLockFileName);
    if (UpLock.holder(file) !== fromPid) return UpLock.acquire(stateDir);
    writePrivateFileAtomic(file, `${process.pid}\n`);
    return new UpLock(file);
  }

  private static holder(file: string): number | undefined {
    try {
      const pid = Number(readFileSync(file, "utf8").trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Removes the lock if this process still holds it. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (UpLock.holder(this.file) === process.pid) rmSync(this.file, { force: true });
  }

  /** Leaves the lock to a child (the detached runtime adopts it); this process no longer holds it. */
  handOver(): void {
    this.released = true;
  }
}
