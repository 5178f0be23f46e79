/**
 * Node.js/V8 flags for the long-lived processes stayup starts for its own code: the runtime of
 * `up --detach` and the counter's instances (a user's own service, webService.start, runs as its
 * command says). Both sit mostly idle at rest, where resident memory matters more than allocation
 * speed (issue 25, item 12; docs/benchmarks.md, "What the default stack holds at rest").
 */
export const ownNodeFlags: readonly string[] = (process.env.STAYUP_TMP_FLAGS ?? "")
  .split(" ")
  .filter(Boolean);
