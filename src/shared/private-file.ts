import {
  chmodSync,
  closeSync,
  existsSync,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";

/**
 * What the state folder holds (the control token, the Redis password, the CA key, logs) is the
 * user's alone: folders 0700, files 0600. This umask keeps what a process creates so.
 */
export const privateUmask = 0o077;

/** A folder only its owner can enter (0700), made so again if it existed with looser modes. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/**
 * Runs `start` (a spawn or fork: the child is created synchronously) under umask 077, so that what
 * the child creates (redis-server's append-only files and rdb, Sentinel's rewritten sentinel.conf,
 * an instance's code cache) is private whatever umask the runtime itself has.
 */
export function withPrivateUmask<T>(start: () => T): T {
  const previous = process.umask(privateUmask);
  try {
    return start();
  } finally {
    process.umask(previous);
  }
}

/**
 * Opens a log file only its owner can read (0600, also when it existed with a looser mode), in a
 * 0700 folder; `flags` as openSync's ("a" to append, "w" to start afresh).
 */
export function openPrivateFile(file: string, flags: "a" | "w"): number {
  ensurePrivateDir(path.dirname(file));
  const fd = openSync(file, flags, 0o600);
  try {
    fchmodSync(fd, 0o600);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

/**
 * Takes group and other permissions off everything under `dir` (and `dir` itself): what an earlier
 * version, another umask or a tool left readable becomes the owner's alone. Symbolic links are not
 * followed (their modes mean nothing, and their targets are not the state folder's).
 */
export function makeTreePrivate(dir: string): void {
  let stat;
  try {
    stat = lstatSync(dir);
  } catch {
    return; // gone meanwhile (a temporary file renamed away)
  }
  if (stat.isSymbolicLink()) return;
  if ((stat.mode & 0o077) !== 0) chmodSync(dir, stat.mode & 0o700);
  if (!stat.isDirectory()) return;
  for (const name of readdirSync(dir)) makeTreePrivate(path.join(dir, name));
}

/**
 * Writes a file only its owner can read (0600), atomically: a reader sees the old content or the
 * new, never a partial file (temporary file in the same folder, then rename).
 */
export function writePrivateFileAtomic(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    writeFileSync(temp, content, { mode: 0o600 });
    chmodSync(temp, 0o600); // the umask cannot widen it, but an existing temp file could be wider
    renameSync(temp, file);
  } catch (error) {
    // The caller retries (the whole file is written again): leave no half-done copy behind.
    rmSync(temp, { force: true });
    throw error;
  }
}

/** A secret kept in a 0600 file: read if present, otherwise generated and written. */
export function privateSecret(file: string, generate: () => string): string {
  if (existsSync(file)) {
    const existing = readFileSync(file, "utf8").trim();
    if (existing) {
      chmodSync(file, 0o600);
      return existing;
    }
  }
  const secret = generate();
  writePrivateFileAtomic(file, `${secret}\n`);
  return secret;
}
