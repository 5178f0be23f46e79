import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { StayupError } from "../shared/errors.ts";
import { commandLineOf, isProcessAlive, isSameProcess, processStartOf } from "../shared/process-info.ts";

export const upLockFileName = "up.lock";

/** What a lock file holds: the holder's pid and start (shared/process-info.ts), complete in one write. */
const ownContent = (() => {
  const start = processStartOf(process.pid);
  return `${process.pid}${start ? ` ${start}` : ""}\n`;
})();

/** The holder a lock file names: its pid, and its start when the file has one (an older stayup's has not). */
function parseHolder(content: string | undefined): { pid: number; start?: string } | undefined {
  const [pidWord, ...startWords] = (content ?? "").trim().split(" ");
  const pid = Number(pidWord);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return startWords.length > 0 ? { pid, start: startWords.join(" ") } : { pid };
}

/**
 * Whether the holder still runs: the same pid with the same start (a pid reused after a SIGKILL
 * names another process, which holds nothing). An older stayup's file names a pid only: its
 * command line is checked then, and unknown counts as held.
 */
const holderAlive = (holder: { pid: number; start?: string }): boolean => {
  if (holder.pid === process.pid) return true;
  if (holder.start) return isSameProcess(holder.pid, holder.start);
  if (!isProcessAlive(holder.pid)) return false;
  const command = commandLineOf(holder.pid);
  return command === undefined || /node/.test(command);
};

/** Blocks this thread briefly (acquire is synchronous: it runs before anything starts). */
const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** A lock file's content, or undefined when it is gone. */
function contentOf(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

/** The holder a lock file names, or undefined (gone, unreadable, or naming no pid). */
const holderOf = (file: string) => parseHolder(contentOf(file));

/** A private file naming this process, complete before anyone can see it under its final name. */
function writeOwnPid(file: string): string {
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(temp, ownContent, { mode: 0o600, flag: "wx" });
  return temp;
}

/**
 * Creates `file` naming this process, in one step: link(2) of a complete temporary file fails
 * with EEXIST if the name exists, so no one ever reads a lock file without its pid.
 */
function createExclusive(file: string): boolean {
  const temp = writeOwnPid(file);
  try {
    linkSync(temp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    rmSync(temp, { force: true });
  }
}

/**
 * Replaces a lock file whose content is `stale` (naming a holder that is gone) with one naming this
 * process. Takers of the same stale lock first race for a claim, `<file>.takeover-<its pid>`, created
 * as the lock is: only the claim's holder replaces the lock, and only if it still reads `stale` (a
 * taker that read it before someone else took it over finds a live holder instead). A claim whose
 * holder died is itself taken over the same way. False: someone else got there first.
 */
function takeOver(file: string, stale: string, depth = 0): boolean {
  if (depth > 4) return false;
  const claim = `${file}.takeover-${parseHolder(stale)?.pid ?? "unnamed"}`;
  if (!createExclusive(claim)) {
    const claimed = contentOf(claim);
    const claimer = holderOf(claim);
    if (claimed === undefined || claimer === undefined || holderAlive(claimer)) return false; // look again
    if (!takeOver(claim, claimed, depth + 1)) return false;
  }
  try {
    if (contentOf(file) !== stale) return false;
    const temp = writeOwnPid(file);
    try {
      renameSync(temp, file);
    } catch (error) {
      rmSync(temp, { force: true });
      throw error;
    }
    return true;
  } finally {
    if (contentOf(claim) === ownContent) rmSync(claim, { force: true });
  }
}

/**
 * One `stayup up` per state folder. The lock file names its holder's pid and start: a holder that
 * is gone (killed with SIGKILL, its pid free or reused since) does not block the next run, and a live one makes a second `up` fail at
 * once with a clear error. (A pid lock, not an mtime lock such as proper-lockfile's: those block
 * the next run for their staleness period after a SIGKILL.) Taking it is atomic, a stale one
 * included: of any number of concurrent takers exactly one wins (test/up-lock.test.ts).
 */
export class UpLock {
  private released = false;

  private constructor(readonly file: string) {
    process.once("exit", () => this.release());
  }

  static acquire(stateDir: string): UpLock {
    mkdirSync(stateDir, { recursive: true });
    const file = path.join(stateDir, upLockFileName);
    for (let attempt = 0; attempt < 200; attempt++) {
      if (createExclusive(file)) return new UpLock(file);
      const content = contentOf(file);
      const holder = parseHolder(content);
      if (holder !== undefined && holderAlive(holder)) {
        throw new StayupError(
          `another \`stayup up\` is already running from ${path.resolve(stateDir)} (pid ${holder.pid})`,
          "use that stack (`stayup status`), stop it with `stayup down`, or pass another --state-dir",
        );
      }
      // Released meanwhile (look again), or left by a run that was killed: take it over. A file
      // that names no pid (an older stayup's, killed while writing it) is stale too.
      if (content === undefined) continue;
      if (takeOver(file, content)) return new UpLock(file);
      pause(5);
    }
    throw new StayupError(`could not take the lock ${file}`, "try again");
  }

  /**
   * The detached child takes over the lock its parent (`stayup up --detach`) took, only if the
   * parent still holds it (or held it and died: its lock is then stale, and taken over as any).
   */
  static adopt(stateDir: string, fromPid: number): UpLock {
    const file = path.join(stateDir, upLockFileName);
    const parent = contentOf(file);
    if (parent === undefined || parseHolder(parent)?.pid !== fromPid || !takeOver(file, parent)) {
      return UpLock.acquire(stateDir);
    }
    return new UpLock(file);
  }

  /** Removes the lock if this process still holds it. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (contentOf(this.file) === ownContent) rmSync(this.file, { force: true });
  }

  /** Leaves the lock to a child (the detached runtime adopts it); this process no longer holds it. */
  handOver(): void {
    this.released = true;
  }
}
