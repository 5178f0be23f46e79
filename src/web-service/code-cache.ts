/**
 * Runs a CommonJS bundle compiled from a V8 code cache, so a new instance spends less of its start
 * compiling the service (docs/benchmarks.md, single instance). Node 20 has no compile cache of its
 * own for this (module.enableCompileCache is Node 22), so this is vm.Script with `cachedData`.
 *
 * A cache can never break a start: it is keyed by a hash of the bundle's bytes and of the Node
 * version and architecture (V8 itself checks only the source's length), carries a digest of its own
 * bytes (a truncated or corrupt file is ignored), and V8 rejects one made under other flags; in
 * every such case the bundle compiles as usual and a new cache is written once the service listens.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import vm from "node:vm";

/** Called by the service once it listens (through globalThis): the cache is written then. */
export const serviceListening = Symbol.for("stayup.web-service.listening");

export type CodeCacheOutcome =
  /** The cache was found and V8 accepted it. */
  | "used"
  /** No cache for this bundle yet. */
  | "absent"
  /** A cache file that could not be read, or whose digest does not match its bytes. */
  | "corrupt"
  /** A well-formed cache that V8 refused (another V8 version or flags). */
  | "rejected";

const digestBytes = 32;
const sha256 = (...parts: (string | Buffer)[]) => {
  const hash = createHash("sha256");
  for (const p of parts) hash.update(p);
  return hash.digest();
};

/** Where the cache of this bundle's bytes lives: beside it, named by what it was made from. */
export function codeCacheFile(scriptFile: string, source: string): string {
  const key = sha256(source, "\0", process.version, "\0", process.arch).toString("hex").slice(0, 16);
  return `${scriptFile}.${key}.v8-code-cache`;
}

function readCache(file: string): { data?: Buffer; corrupt: boolean } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    return { corrupt: (error as NodeJS.ErrnoException).code !== "ENOENT" };
  }
  const data = bytes.subarray(digestBytes);
  if (bytes.length <= digestBytes || !sha256(data).equals(bytes.subarray(0, digestBytes)))
    return { corrupt: true };
  return { data, corrupt: false };
}

/** Writes the cache whole or not at all: a start reading it meanwhile sees the old file or none. */
export function writeCodeCache(file: string, data: Buffer): void {
  const partial = `${file}.${process.pid}.partial`;
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(partial, Buffer.concat([sha256(data), data]));
    renameSync(partial, file);
  } finally {
    rmSync(partial, { force: true });
  }
}

/**
 * Compiles `scriptFile` (a CommonJS bundle) with its code cache when there is a usable one, and runs
 * it as a CommonJS module. Without one, it writes one when the service calls
 * globalThis[serviceListening] (the functions compiled by then are in it), or at `writeAfterMs`.
 */
export function runWithCodeCache(
  script: string,
  { writeAfterMs = 10_000, onWrite }: { writeAfterMs?: number; onWrite?: (error?: Error) => void } = {},
): CodeCacheOutcome {
  const scriptFile = path.resolve(script);
  const source = readFileSync(scriptFile, "utf8");
  const cacheFile = codeCacheFile(scriptFile, source);
  const cache = readCache(cacheFile);
  // The wrapper is on the bundle's first line, so line numbers in stack traces stay the bundle's.
  const wrapper = "(function (exports, require, module, __filename, __dirname) { ";
  const compiled = new vm.Script(`${wrapper}${source}\n})`, {
    filename: scriptFile,
    columnOffset: -wrapper.length,
    cachedData: cache.data,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const outcome: CodeCacheOutcome = cache.corrupt
    ? "corrupt"
    : !cache.data
      ? "absent"
      : compiled.cachedDataRejected
        ? "rejected"
        : "used";
  if (outcome !== "used") {
    let written = false;
    const write = () => {
      if (written) return;
      written = true;
      clearTimeout(timer);
      try {
        writeCodeCache(cacheFile, compiled.createCachedData());
        onWrite?.();
      } catch (error) {
        // Only the next start is slower: say so, and run on.
        console.error(`code cache not written to ${cacheFile}: ${(error as Error).message}`);
        onWrite?.(error as Error);
      }
    };
    const timer = setTimeout(write, writeAfterMs);
    timer.unref();
    (globalThis as Record<symbol, unknown>)[serviceListening] = () => setImmediate(write).unref();
  }
  const module = { exports: {}, filename: scriptFile, id: ".", loaded: false };
  const run = compiled.runInThisContext() as (...args: unknown[]) => void;
  run.call(
    module.exports,
    module.exports,
    createRequire(scriptFile),
    module,
    scriptFile,
    path.dirname(scriptFile),
  );
  module.loaded = true;
  return outcome;
}
