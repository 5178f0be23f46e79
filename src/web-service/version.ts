import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

/**
 * The version an instance serves: a content hash of the service bundle and of the instance's
 * settings, so a change of either is a new version (and, on AWS, a new launch template, which rolls
 * the instances). Both renderers call this; the instance gets it as STAYUP_VERSION at launch and
 * names it in every answer of `GET /`.
 */
export function serviceVersion(bundleFile: string, settings: Record<string, unknown>): string {
  const hash = createHash("sha256");
  hash.update(readFileSync(bundleFile));
  const sorted = Object.fromEntries(Object.entries(settings).sort(([a], [b]) => a.localeCompare(b)));
  hash.update(JSON.stringify(sorted));
  return `v-${hash.digest("hex").slice(0, 12)}`;
}
