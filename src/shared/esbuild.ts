import { type BuildOptions, type BuildResult, build, stop } from "esbuild";

let buildsInFlight = 0;

/**
 * esbuild's build(), with its service process stopped once no build needs it: esbuild keeps that
 * process (about 90 MB resident) for later builds, and a long-lived process (the runtime) builds
 * only now and then: at `up`, on a roll, on the dashboard's first view. One count for every
 * caller, so that one caller's stop never cuts another's build short.
 */
export async function buildThenStop<T extends BuildOptions>(
  options: T & { [Key in Exclude<keyof T, keyof BuildOptions>]: never },
): Promise<BuildResult<T>> {
  buildsInFlight++;
  try {
    return await build<T>(options);
  } finally {
    if (--buildsInFlight === 0) await stop();
  }
}
