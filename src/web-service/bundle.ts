import { existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type BuildOptions, buildSync } from "esbuild";
import { buildThenStop } from "../shared/esbuild.ts";
import { keepBundle, packageRoot, reuseBundle } from "./bundle-cache.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const entry = path.join(here, "main.ts");
export const webServiceBundleName = "web-service.mjs";
/** The same service as CommonJS, which a V8 code cache can be made for (code-cache.ts). */
export const webServiceScriptName = "web-service.cjs";
/** The entry that runs the CommonJS bundle from its code cache. */
export const codeCacheStarterName = "web-service-start.cjs";

function options(folder: string): BuildOptions {
  // Absolute: esbuild resolves a relative outfile from absWorkingDir (the package), not the caller's folder.
  const outDir = path.resolve(folder);
  mkdirSync(outDir, { recursive: true });
  return {
    entryPoints: [entry],
    outfile: path.join(outDir, webServiceBundleName),
    // Paths inside the bundle (CommonJS modules' names) relative to the package, not to the
    // caller's folder: the same bundle, and the same AWS asset hash, from any folder.
    absWorkingDir: packageRoot,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    sourcemap: "linked",
    // Minified (names kept, for logs and errors): a third of the bytes to parse, so an instance
    // listens sooner; on a loaded machine a replacement's start is most of a single instance's
    // downtime (docs/benchmarks.md).
    minify: true,
    keepNames: true,
    legalComments: "none",
    logLevel: "error",
    // Some dependencies are CommonJS and call require(); give the ESM bundle one.
    banner: {
      js: "import { createRequire as __stayupCreateRequire } from 'node:module'; const require = __stayupCreateRequire(import.meta.url);",
    },
  };
}

/**
 * The bundle's code as CommonJS (vm.Script compiles scripts, not modules, from a code cache), and
 * the small entry that does so. The same source and settings; no banner: CommonJS has require().
 */
function codeCacheOptions(outDir: string): BuildOptions[] {
  const service = options(outDir);
  return [
    { ...service, format: "cjs", banner: {}, outfile: path.resolve(outDir, webServiceScriptName) },
    {
      ...service,
      entryPoints: [path.join(here, "start-with-code-cache.ts")],
      format: "cjs",
      banner: {},
      sourcemap: false,
      outfile: path.resolve(outDir, codeCacheStarterName),
    },
  ];
}

/**
 * Bundles the web service and its dependencies into one file that needs only Node.js.
 * The local runtime forks this file for every instance, and the AWS renderer ships the same
 * file as an asset to every EC2 instance, so both run the same code. With `codeCache`, the same
 * code is also bundled as CommonJS beside it, with its code-cache entry: instanceEntry() then
 * starts an instance from those (a single instance's replacement starts sooner).
 */
export async function bundleWebService(outDir: string, { codeCache = false } = {}): Promise<string> {
  if (!codeCache) {
    // A CommonJS twin left by an earlier build here would be older code: instanceEntry must not find it.
    for (const name of [webServiceScriptName, codeCacheStarterName])
      rmSync(path.join(outDir, name), { force: true });
  }
  const builds = [options(outDir), ...(codeCache ? codeCacheOptions(outDir) : [])];
  if (!reuseBundle(builds, outDir)) {
    const results = await Promise.all(builds.map((o) => buildThenStop({ ...o, metafile: true })));
    keepBundle(
      builds,
      outDir,
      results.map((r) => r.metafile),
    );
  }
  return path.join(outDir, webServiceBundleName);
}

/**
 * How to start an instance of a bundle: through its code cache when it was built with one (and
 * STAYUP_CODE_CACHE is not "off"), else the bundle itself.
 */
export function instanceEntry(bundleFile: string): { modulePath: string; args: string[] } {
  const dir = path.dirname(bundleFile);
  const script = path.join(dir, webServiceScriptName);
  const starter = path.join(dir, codeCacheStarterName);
  if (process.env.STAYUP_CODE_CACHE !== "off" && existsSync(script) && existsSync(starter))
    return { modulePath: starter, args: [script] };
  return { modulePath: bundleFile, args: [] };
}

/** The same bundle, synchronously (CDK constructs are built synchronously). */
export function bundleWebServiceSync(outDir: string): string {
  const builds = [options(outDir)];
  if (!reuseBundle(builds, outDir)) {
    keepBundle(
      builds,
      outDir,
      builds.map((o) => buildSync({ ...o, metafile: true }).metafile),
    );
  }
  return path.join(outDir, webServiceBundleName);
}
