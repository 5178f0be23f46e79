/**
 * Node.js (V8) flags for the runtime of `up --detach` (and package.json's `npm start`, which a test
 * keeps the same), set here only: a long-lived process whose work at rest is timers and small
 * requests, where resident memory matters more than allocation speed (issue 25, item 12;
 * docs/benchmarks.md, "What the default stack holds at rest"). The
 * counter's instances get none: a flag that trades CPU for memory there shows in the CPU the
 * scaling policy reads and in the latency the balancer judges.
 */
export const runtimeNodeFlags: readonly string[] = [
  // Why: Node 20 lets the young generation's two semi-spaces grow to 16 MiB each during a busy
  // start, and once grown both stay resident for the process's life (32 MiB at rest, 1 in use).
  "--max-semi-space-size=1",
  // Why: V8's background threads (concurrent marking and sweeping, compiling off the main thread)
  // each leave a glibc malloc arena of 1 to 5 MiB behind, and with them the idle runtime kept
  // 14 MiB more of V8 heap (30 against 16 MiB); on its main thread the same work costs a few
  // percent more CPU and no latency (docs/benchmarks.md, 2026-12-07, fifth session).
  "--single-threaded",
];
