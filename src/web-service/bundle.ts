import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), "main.ts");

/**
 * Bundles the web service and its dependencies into one file that needs only Node.js.
 * The local runtime forks this file for every instance, and the AWS renderer ships the same
 * file as an asset to every EC2 instance, so both run the same code.
 */
export async function bundleWebService(outDir: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const outfile = path.join(outDir, "web-service.mjs");
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    minify: false,
    sourcemap: "linked",
    legalComments: "none",
    logLevel: "error",
    // Some dependencies are CommonJS and call require(); give the ESM bundle one.
    banner: {
      js: "import { createRequire as __stayupCreateRequire } from 'node:module'; const require = __stayupCreateRequire(import.meta.url);",
    },
  });
  return outfile;
}
