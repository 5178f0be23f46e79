/**
 * Node.js (V8) flags for the long-lived Node processes stayup starts for its own code, set here
 * only. Both sit mostly idle at rest, where resident memory matters more than allocation speed
 * (issue 25, item 12; docs/benchmarks.md, "What the default stack holds at rest"). A user's own
 * service (webService.start) runs as its command says: its flags are its owner's.
 */

/** The young generation's two semi-spaces at most 1 MiB each. */
// Why: Node 20 lets them grow to 16 MiB each under a busy start, and once grown both stay resident
// for the process's life (the runtime held 32 MiB of them at rest, 1 MiB of it in use).
const smallYoungGeneration = "--max-semi-space-size=1";

/** The runtime of `up --detach` (the CLI's `up` in a terminal is started by the user's own node). */
export const runtimeNodeFlags: readonly string[] = [
  smallYoungGeneration,
  // Why: V8's memory-over-speed trade-offs (a slower-growing old generation, smaller caches): 13 MiB
  // less resident in the runtime, a controller whose work is timers and small requests.
  "--optimize-for-size",
];

/** The counter's instances (the bundle of src/web-service, forked by the instance groups). */
export const counterNodeFlags: readonly string[] = [smallYoungGeneration];
