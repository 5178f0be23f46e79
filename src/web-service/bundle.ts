import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type BuildOptions, build, buildSync } from "esbuild";

const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), "main.ts");
export const webServiceBundleName = "web-service.mjs";

function options(outDir: string): BuildOptions {
  mkdirSync(outDir, { recursive: true });
  return {
    entryPoints: [entry],
    outfile: path.join(outDir, webServiceBundleName),
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
 * Bundles the web service and its dependencies into one file that needs only Node.js.
 * The local runtime forks this file for every instance, and the AWS renderer ships the same
 * file as an asset to every EC2 instance, so both run the same code.
 */
export async function bundleWebService(outDir: string): Promise<string> {
  await build(options(outDir));
  return path.join(outDir, webServiceBundleName);
}

/** The same bundle, synchronously (CDK constructs are built synchronously). */
export function bundleWebServiceSync(outDir: string): string {
  buildSync(options(outDir));
  return path.join(outDir, webServiceBundleName);
}
