import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { StayupError } from "../shared/errors.ts";

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
export function serviceVersion(
  bundleFile: string,
  settings: Record<string, unknown>,
  /** The user's service (webService.start): its folder is its code, so it is hashed too. */
  serviceFolder?: ServiceFolder,
): string {
  const hash = createHash("sha256");
  hash.update(readFileSync(bundleFile));
  if (serviceFolder) hash.update(serviceFolderDigest(serviceFolder));
  const sorted = Object.fromEntries(
    Object.entries(settings)
      .filter(([name]) => !wiringVariables.has(name))
      // By code unit, not localeCompare: the names' order needs no locale, and the first
      // localeCompare loads ICU's collation (2.7 MiB the runtime kept resident; issue 25, item 12).
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  hash.update(JSON.stringify(sorted));
  return `v-${hash.digest("hex").slice(0, 12)}`;
}

/** A user's service folder, and folders inside it that are no part of its code (the state folder). */
export interface ServiceFolder {
  path: string;
  exclude?: readonly string[];
}

/**
 * Names never part of a service's code wherever they are in its folder: version control, stayup's
 * state (`.stayup`, `.stayup-2`, ...), CDK's output (`cdk.out`, `cdk.out.deploy`, ...) and Python's
 * bytecode caches (written by the running service itself: hashed, every `up` would be a new version).
 * node_modules is hashed: a changed dependency is a changed service.
 */
export const excludedFromServiceFolder = (name: string): boolean =>
  name === ".git" || name.startsWith(".stayup") || name.startsWith("cdk.out") || name === "__pycache__";

/** More entries than this in a service folder is taken for a mistake (the home folder, `/`). */
export const serviceFolderEntryLimit = 100_000;

/**
 * What a service folder holds, as a digest: each entry's path, size and modification time (a
 * symbolic link's target, not followed), in a stable order. Not the files' content: reading a
 * node_modules of tens of thousands of files at every `up` and `roll` would take seconds, and a
 * saved file has a new modification time. So a file saved unchanged (or `touch`ed) is a new version
 * too; a file restored with its old time by a tool (some archive tools do) is not.
 */
export function serviceFolderDigest(folder: ServiceFolder, entryLimit = serviceFolderEntryLimit): string {
  const hash = createHash("sha256");
  const excluded = new Set((folder.exclude ?? []).map((p) => path.resolve(p)));
  let entries = 0;
  const walk = (dir: string, relative: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (error) {
      throw new StayupError(
        `cannot read ${dir} to hash the service's code into its version: ${(error as Error).message}`,
        "make webService.start.workingDirectory readable, or point it at the service's own folder",
      );
    }
    for (const name of names) {
      if (excludedFromServiceFolder(name)) continue;
      const full = path.join(dir, name);
      if (excluded.has(full)) continue;
      if (++entries > entryLimit) {
        throw new StayupError(
          `${folder.path} holds more than ${entryLimit} files and folders: stayup hashes the service's folder (names, sizes, modification times) into its version, and this looks like more than one service`,
          "point webService.start.workingDirectory at the service's own folder",
        );
      }
      const rel = relative ? `${relative}/${name}` : name;
      const stat = lstatSync(full);
      if (stat.isSymbolicLink()) hash.update(`l ${rel} ${readlinkSync(full)}\n`);
      else if (stat.isDirectory()) {
        hash.update(`d ${rel}\n`);
        walk(full, rel);
      } else hash.update(`f ${rel} ${stat.size} ${stat.mtimeMs}\n`);
    }
  };
  walk(path.resolve(folder.path), "");
  return hash.digest("hex");
}

/** The service folder of a description's `webService.start` (none for the built-in counter), its state folder left out. */
export const serviceFolderOf = (
  start: { workingDirectory: string } | undefined,
  stateDir: string,
): ServiceFolder | undefined => (start ? { path: start.workingDirectory, exclude: [stateDir] } : undefined);
