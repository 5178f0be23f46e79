import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

/**
 * Writes a file only its owner can read (0600), atomically: a reader sees the old content or the
 * new, never a partial file (temporary file in the same folder, then rename).
 */
export function writePrivateFileAtomic(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
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
