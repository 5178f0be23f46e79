import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

/**
 * Variables of a local instance's environment that wire it to this run (where Redis and its
 * Sentinels listen, the run's password and load secret) or name the instance: they change at each
 * `up` (free ports, a new secret) while the service stays the same, so they are no part of its
 * version; otherwise `down` then `up` with no change would be a new version and `up` would roll.
 * Every local `up` starts its instances with the wiring of that run, so none can serve stale wiring.
 * (On AWS the Redis endpoint is read from Parameter Store at boot: there it is hashed, see
 * aws/web/launch-template.ts, so a new endpoint rolls the instances onto it.)
 */
export const wiringVariables: ReadonlySet<string> = new Set([
  "STAYUP_REDIS_URL",
  "STAYUP_REDIS_SENTINELS",
  "STAYUP_REDIS_PASSWORD",
  "STAYUP_REDIS_AUTH_TOKEN",
  "STAYUP_REDIS_MASTER_NAME",
  "REDIS_URL",
  "STAYUP_LOAD_SECRET",
  "STAYUP_INSTANCE_ID",
  "STAYUP_AZ",
  "STAYUP_REGION",
  "STAYUP_VERSION",
  "HOST",
  "PORT",
]);

/**
 * The version an instance serves: a content hash of the service bundle and of the instance's
 * settings (its environment but the wiring, above), so a change of either is a new version (and,
 * on AWS, a new launch template, which rolls the instances). Both renderers call this; the
 * instance gets it as STAYUP_VERSION at launch and names it in every answer of `GET /`.
 */
export function serviceVersion(bundleFile: string, settings: Record<string, unknown>): string {
  const hash = createHash("sha256");
  hash.update(readFileSync(bundleFile));
  const sorted = Object.fromEntries(
    Object.entries(settings)
      .filter(([name]) => !wiringVariables.has(name))
      .sort(([a], [b]) => a.localeCompare(b)),
  );
  hash.update(JSON.stringify(sorted));
  return `v-${hash.digest("hex").slice(0, 12)}`;
}
