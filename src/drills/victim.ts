import { Option } from "commander";
import { StayupError } from "../shared/errors.ts";
import type { DrillRun } from "./harness.ts";

/** `--instance <id>`: the instance a drill faults, for the drills that fault one instance. */
export const instanceOption = () =>
  new Option(
    "--instance <id>",
    "the instance to fault, an id from `stayup status` (default: a healthy one, at random)",
  );

/** A drill's `instance` option as drill options: left out when not given (then one at random). */
export const victimOf = (options: { instance?: string }) =>
  options.instance === undefined ? {} : { instance: options.instance };

/**
 * The instance a drill faults: the one asked for, which must be healthy (a drill on an instance
 * already out of rotation would measure nothing), or a healthy one at random, so that repeated
 * drills do not always hit the same zone and instance. `random` is injected for tests.
 */
export function chooseInstance<I extends { id: string; healthy: boolean }>(
  instances: readonly I[],
  wanted: string | undefined,
  random: () => number = Math.random,
): I | undefined {
  const healthy = instances.filter((i) => i.healthy);
  if (wanted === undefined) return healthy[Math.floor(random() * healthy.length)];
  const found = instances.find((i) => i.id === wanted);
  if (found?.healthy) return found;
  const ids = healthy.map((i) => i.id).join(", ") || "none";
  throw new StayupError(
    found ? `instance ${wanted} is not healthy: nothing to measure` : `no instance ${wanted} in this stack`,
    `pass --instance with a healthy instance (now: ${ids}), or leave it out for one at random`,
  );
}

/** chooseInstance over the run's starting status; a refusal stops the run's traffic before it is thrown. */
export async function chooseRunInstance(run: DrillRun, wanted: string | undefined) {
  try {
    return chooseInstance(run.before.instances, wanted);
  } catch (error) {
    await run.finish();
    throw error;
  }
}
