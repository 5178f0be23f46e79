// stayup's commands from a bundle of its TypeScript sources rather than through tsx.
//
// tsx compiles every source a command loads at each start: about 0.25 s of CPU before `--help`
// prints, 0.6 s for `status` (docs/benchmarks.md, "What a command costs before it answers"). esbuild
// bundles all of src/cli in about 0.4 s, once after each change to the sources, into
// node_modules/.cache/stayup-cli/<key>/ (one chunk per command, loaded on demand as the catalog in
// src/cli/main.ts loads commands); every later start loads that plain JavaScript.
//
// The key hashes every file under src/ (path, size, modification time), package.json and this
// file, and the package's own folder: a bundle never runs sources other than the ones on disk.
// Modules that find files beside themselves (`import.meta.url`) keep their own source's URL in
// the bundle (the `define` below), so the dashboard's client, the balancer's worker, the CDK app
// and the web service's entry are found where they are.
//
// STAYUP_PREBUILT=0 runs the sources through tsx as before (and so does any failure to build or to
// write the cache: a read-only install still works, only slower).
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/**
 * STAYUP_CLI_CACHE moves it (the tests' own cache); it must lie inside the package's folder, where
 * the bundle's imports of dependencies find node_modules.
 */
const cacheRoot =
  process.env.STAYUP_CLI_CACHE || path.join(packageRoot, "node_modules", ".cache", "stayup-cli");
/** Bundles not used for this long are removed; younger ones may still serve a running stack. */
const keepUnusedMs = 7 * 24 * 3600 * 1000;

/** src/cli/main.ts's exports, from the bundle when it can be had, else through tsx. */
export async function loadCli() {
  if (process.env.STAYUP_PREBUILT !== "0") {
    const entry = await prebuiltEntry().catch((error) => {
      if (process.env.STAYUP_DEBUG) console.error(`stayup: running through tsx (${error.message})`);
      return undefined;
    });
    if (entry) return import(pathToFileURL(entry).href);
  }
  const { register } = await import("tsx/esm/api");
  register();
  return import("../src/cli/main.ts");
}

/** The bundle's name: changes with any file under `root`/src, its package.json, or this file. */
export function sourcesKey(root = packageRoot) {
  const hash = createHash("sha256");
  hash.update(`${root}\0`);
  hash.update(readFileSync(path.join(root, "package.json")));
  hash.update(readFileSync(fileURLToPath(import.meta.url)));
  const walk = (dir) => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.isFile()) {
        const stat = statSync(file);
        hash.update(`${path.relative(root, file)}\0${stat.size}\0${stat.mtimeMs}\0`);
      }
    }
  };
  walk(path.join(root, "src"));
  return hash.digest("hex").slice(0, 20);
}

async function prebuiltEntry() {
  const dir = path.join(cacheRoot, sourcesKey());
  const entry = path.join(dir, "main.js");
  if (existsSync(entry)) {
    markUsed(dir);
    return entry;
  }
  mkdirSync(cacheRoot, { recursive: true });
  // Built beside, then renamed into place: a concurrent start (the test suite runs several) sees
  // either no bundle or a whole one.
  const building = `${dir}.building-${process.pid}`;
  const esbuild = await import("esbuild");
  try {
    await esbuild.build({
      entryPoints: [path.join(packageRoot, "src/cli/main.ts")],
      outdir: building,
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      target: "node20",
      // Dependencies stay in node_modules, loaded as they are: only stayup's own sources are bundled.
      packages: "external",
      // Beside each chunk, not inside it: Node reads a map only with --enable-source-maps, and an
      // inline one is kept in memory with the chunk's source for as long as the command runs.
      sourcemap: "linked",
      logLevel: "silent",
      define: { "import.meta.url": "__stayupSourceUrl" },
      plugins: [
        {
          name: "source-url",
          setup(pluginBuild) {
            pluginBuild.onLoad({ filter: /\.ts$/ }, (args) => ({
              loader: "ts",
              contents: `const __stayupSourceUrl = ${JSON.stringify(pathToFileURL(args.path).href)};\n${readFileSync(args.path, "utf8")}`,
            }));
          },
        },
      ],
    });
    try {
      renameSync(building, dir);
    } catch (error) {
      // Another start renamed its own build first: use that one.
      if (!existsSync(entry)) throw error;
    }
  } finally {
    rmSync(building, { recursive: true, force: true });
    // esbuild's service process would otherwise live as long as the command (a whole `stayup up`).
    await esbuild.stop();
  }
  removeUnused(path.basename(dir));
  return entry;
}

/** Dates the bundle's folder at most once an hour, so that removeUnused sees it as in use. */
function markUsed(dir) {
  try {
    const now = Date.now();
    if (now - statSync(dir).mtimeMs > 3600 * 1000) utimesSync(dir, now / 1000, now / 1000);
  } catch {
    // Not ours to date (a read-only install): it is simply never removed.
  }
}

function removeUnused(current) {
  const now = Date.now();
  for (const name of readdirSync(cacheRoot)) {
    if (name === current) continue;
    const dir = path.join(cacheRoot, name);
    try {
      if (now - statSync(dir).mtimeMs > keepUnusedMs) rmSync(dir, { recursive: true, force: true });
    } catch {
      // Removed by a concurrent start.
    }
  }
}
