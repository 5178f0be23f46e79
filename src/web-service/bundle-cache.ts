/**
 * Built web-service bundles kept for reuse, so that every `up`, roll and synthesis does not bundle
 * and minify the same sources again (about 0.7 s of CPU a build, three builds with a code cache).
 *
 * An entry is keyed by the build's options and esbuild's version, and holds the files the build
 * wrote and the content hash of every file it read (esbuild's metafile). It is reused only while
 * each of those files, the package's package.json and its lockfile hash as they did: a bundle never
 * runs code other than the sources on disk. Source maps name their sources relative to where they
 * are written, so the cache keeps them absolute and writes them relative to each copy's folder, as
 * esbuild itself would have. A cache that cannot be read or written only means building again.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type BuildOptions, type Metafile, version as esbuildVersion } from "esbuild";

/** The package's root (this file is src/web-service/bundle-cache.ts, also inside the CLI's bundle). */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** STAYUP_WEB_SERVICE_CACHE moves it; "off" builds every time. */
function cacheRoot(): string | undefined {
  const configured = process.env.STAYUP_WEB_SERVICE_CACHE;
  if (configured === "off") return undefined;
  return configured || path.join(packageRoot, "node_modules", ".cache", "stayup-web-service");
}

interface Entry {
  /** Absolute path → sha256 of every file the builds read, and of package.json and the lockfile. */
  inputs: Record<string, string>;
  /** The files written, by name (all builds write into one folder). */
  outputs: string[];
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const packageFiles = () =>
  ["package.json", "package-lock.json"].map((f) => path.join(packageRoot, f)).filter((f) => existsSync(f));

function entryDir(root: string, builds: BuildOptions[]): string {
  const key = createHash("sha256")
    .update(esbuildVersion)
    // The output folder is not part of what is built (outfile's name is).
    .update(JSON.stringify(builds.map((b) => ({ ...b, outfile: path.basename(b.outfile ?? "") }))))
    .digest("hex")
    .slice(0, 20);
  return path.join(root, key);
}

/**
 * A source map's text with its sources moved: each `relocate(source)`. Only the "sources" line is
 * rewritten, in esbuild's own layout, so that a copy is byte for byte what esbuild writes there (the
 * AWS asset's hash covers the map).
 */
function relocateSources(text: string, relocate: (source: string) => string): string {
  const line = /^ {2}"sources": (\[.*\]),$/m.exec(text);
  if (!line?.[1]) throw new Error("no sources line in the source map");
  const sources = (JSON.parse(line[1]) as string[]).map(relocate);
  return text.replace(line[0], `  "sources": [${sources.map((s) => JSON.stringify(s)).join(", ")}],`);
}

const absoluteFrom = (dir: string) => (source: string) => path.resolve(dir, source);
const relativeTo = (dir: string) => (source: string) => path.relative(dir, source).split(path.sep).join("/");

/** Copies a valid entry's files into `outDir`; false when there is none or it is out of date. */
export function reuseBundle(builds: BuildOptions[], outDir: string): boolean {
  const root = cacheRoot();
  if (!root) return false;
  const dir = entryDir(root, builds);
  try {
    const entry = JSON.parse(readFileSync(path.join(dir, "entry.json"), "utf8")) as Entry;
    for (const [file, hash] of Object.entries(entry.inputs)) if (sha256(file) !== hash) return false;
    mkdirSync(outDir, { recursive: true });
    for (const name of entry.outputs) {
      if (name.endsWith(".map")) {
        const text = readFileSync(path.join(dir, name), "utf8");
        writeFileSync(path.join(outDir, name), relocateSources(text, relativeTo(outDir)));
        // Written, not copied: a copy takes the cache file's mode (0644 when a synthesis built it),
        // and a stack's state folder is its user's alone (the caller's umask decides, as esbuild's).
      } else writeFileSync(path.join(outDir, name), readFileSync(path.join(dir, name)));
    }
    return true;
  } catch {
    // No entry, one being replaced, or a file gone: build instead.
    return false;
  }
}

/** Keeps what the builds into `outDir` wrote (each build with `metafile: true`) for reuse. */
export function keepBundle(builds: BuildOptions[], outDir: string, metafiles: Metafile[]): void {
  const root = cacheRoot();
  if (!root) return;
  const dir = entryDir(root, builds);
  const staging = `${dir}.${randomBytes(4).toString("hex")}`;
  try {
    const workingDir = builds[0]?.absWorkingDir ?? process.cwd();
    const inputs: Record<string, string> = {};
    for (const file of [
      ...metafiles.flatMap((m) =>
        Object.keys(m.inputs)
          // Not files: "(disabled):…" (a package's browser field), "<define:…>".
          .filter((f) => !f.startsWith("(") && !f.startsWith("<"))
          .map((f) => path.resolve(workingDir, f)),
      ),
      ...packageFiles(),
    ])
      inputs[file] = sha256(file);
    const outputs = [
      ...new Set(metafiles.flatMap((m) => Object.keys(m.outputs).map((f) => path.basename(f)))),
    ];
    mkdirSync(staging, { recursive: true });
    for (const name of outputs) {
      if (name.endsWith(".map")) {
        const text = readFileSync(path.join(outDir, name), "utf8");
        const kept = relocateSources(text, absoluteFrom(outDir));
        // Kept only if it gives back esbuild's own text here: copies elsewhere are then exact too.
        if (relocateSources(kept, relativeTo(outDir)) !== text)
          throw new Error(`${name} would not round-trip`);
        writeFileSync(path.join(staging, name), kept);
      } else copyFileSync(path.join(outDir, name), path.join(staging, name));
    }
    writeFileSync(path.join(staging, "entry.json"), JSON.stringify({ inputs, outputs } satisfies Entry));
    // Replaced whole: a reader sees the old entry, none, or the new one.
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
  } catch {
    // A read-only install, or another process storing the same entry: it only builds again next time.
    rmSync(staging, { recursive: true, force: true });
  }
}
