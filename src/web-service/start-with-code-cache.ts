/**
 * An instance's entry when its bundle was built with a code cache (bundleWebService with
 * `codeCache`): `node web-service-start.cjs web-service.cjs` compiles the bundle from its V8 code
 * cache, or as usual when there is none it can use (see code-cache.ts).
 */
import { runWithCodeCache } from "./code-cache.ts";

const scriptFile = process.argv[2];
if (!scriptFile) {
  console.error("usage: node web-service-start.cjs <web-service.cjs>");
  process.exit(2);
}
const outcome = runWithCodeCache(scriptFile);
// For the runtime and the start-up bench: whether this start compiled from the cache.
process.send?.({ type: "code-cache", outcome });
