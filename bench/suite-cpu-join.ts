/**
 * Preload of bench/suite-cpu.ts (`--import`): a test file's process moves itself into its own
 * cgroup under STAYUP_BENCH_CGROUP, so that what it starts (CLI runs, detached stacks,
 * redis-server, chromium) is counted to it too: children stay in their parent's cgroup, detached
 * or not. Any other process (the runner, a CLI run) does nothing here.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

const root = process.env.STAYUP_BENCH_CGROUP;
const file = process.argv[1];
if (root && file?.endsWith(".test.ts")) {
  const group = path.join(root, path.basename(file));
  mkdirSync(group, { recursive: true });
  writeFileSync(path.join(group, "cgroup.procs"), String(process.pid));
}
