/**
 * Node.js (V8) flags for the runtime of `up --detach`, set here only: a long-lived process whose
 * work at rest is timers and small requests, where resident memory matters more than allocation
 * speed (issue 25, item 12; docs/benchmarks.md, "What the default stack holds at rest"). The
 * counter's instances get none: a flag that trades CPU for memory there shows in the CPU the
 * scaling policy reads and in the latency the balancer judges.
 */
export const runtimeNodeFlags: readonly string[] = [
  // Why: Node 20 lets the young generation's two semi-spaces grow to 16 MiB each during a busy
  // start, and once grown both stay resident for the process's life (32 MiB at rest, 1 in use).
  "--max-semi-space-size=1",
];
