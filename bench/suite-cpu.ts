/**
 * Where the suite's time goes: the runner (test/run.ts) with each test file's processes in their
 * own cgroup, so that each file's CPU (user + system, everything it started, detached stacks
 * included) is read beside its wall time. A file whose CPU is far below its wall time mostly waits
 * (a place for more files side by side); one near or above it is CPU-bound (less work is the only cut).
 *
 *   node --import tsx bench/suite-cpu.ts [runner arguments: --unit, test/x.test.ts …]
 *
 * Needs root and a cgroup v1 `cpuacct` hierarchy (/sys/fs/cgroup/cpuacct) or cgroup v2
 * (/sys/fs/cgroup/cgroup.controllers). STAYUP_TEST_CONCURRENCY is the runner's, as always.
 * Writes test-artifacts/test-cpu.json and prints the files by CPU. A file whose cgroup still holds
 * processes at the end left something running: listed as such.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Hierarchy {
  root: string;
  /** CPU seconds (user + system) of the group and its descendants. */
  cpu(group: string): { user: number; system: number };
}

function hierarchy(): Hierarchy {
  const v1 = "/sys/fs/cgroup/cpuacct";
  if (existsSync(path.join(v1, "cpuacct.stat"))) {
    return {
      root: v1,
      cpu(group) {
        // In USER_HZ ticks (100 a second on Linux).
        const stat = readFileSync(path.join(group, "cpuacct.stat"), "utf8");
        const tick = (k: string) => Number(new RegExp(`${k} (\\d+)`).exec(stat)?.[1] ?? NaN) / 100;
        return { user: tick("user"), system: tick("system") };
      },
    };
  }
  if (existsSync("/sys/fs/cgroup/cgroup.controllers")) {
    return {
      root: "/sys/fs/cgroup",
      cpu(group) {
        const stat = readFileSync(path.join(group, "cpu.stat"), "utf8");
        const usec = (k: string) => Number(new RegExp(`${k} (\\d+)`).exec(stat)?.[1] ?? NaN) / 1e6;
        return { user: usec("user_usec"), system: usec("system_usec") };
      },
    };
  }
  throw new Error("no cgroup hierarchy to count CPU in (cgroup v1 cpuacct or cgroup v2)");
}

const h = hierarchy();
const root = path.join(h.root, `stayup-suite-cpu-${process.pid}`);
const parentProcs = path.join(h.root, "cgroup.procs");
mkdirSync(root);
// The runner and its reporter count to the root; each file's processes to the root's subgroups.
writeFileSync(path.join(root, "cgroup.procs"), String(process.pid));

const startedAt = Date.now();
const code = await new Promise<number | null>((resolve) => {
  const runner = spawn(
    process.execPath,
    ["--import", "tsx", "--import", "./bench/suite-cpu-join.ts", "test/run.ts", ...process.argv.slice(2)],
    { cwd: repo, stdio: "inherit", env: { ...process.env, STAYUP_BENCH_CGROUP: root } },
  );
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => runner.kill(signal));
  runner.on("close", resolve);
});
const wallSeconds = (Date.now() - startedAt) / 1000;
writeFileSync(parentProcs, String(process.pid));

const durations = JSON.parse(
  readFileSync(path.join(repo, "test-artifacts", "test-durations.json"), "utf8"),
) as { concurrency: number; files: { file: string; seconds: number; passed: boolean; group: string }[] };
const round = (x: number) => Math.round(x * 10) / 10;
const files = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => {
    const group = path.join(root, d.name);
    const { user, system } = h.cpu(group);
    const left = readFileSync(path.join(group, "cgroup.procs"), "utf8").trim().split("\n").filter(Boolean);
    const timing = durations.files.find((f) => path.basename(f.file) === d.name);
    if (left.length === 0) rmdirSync(group);
    return {
      file: `test/${d.name}`,
      cpuSeconds: round(user + system),
      userSeconds: round(user),
      systemSeconds: round(system),
      wallSeconds: timing?.seconds ?? null,
      group: timing?.group ?? null,
      passed: timing?.passed ?? null,
      leftRunning: left.map(Number),
    };
  })
  .sort((a, b) => b.cpuSeconds - a.cpuSeconds);
const total = h.cpu(root);
const filesCpu = files.reduce((s, f) => s + f.cpuSeconds, 0);
if (files.every((f) => f.leftRunning.length === 0)) rmdirSync(root);

const report = {
  concurrency: durations.concurrency,
  wallSeconds: round(wallSeconds),
  cpuSeconds: round(total.user + total.system),
  runnerCpuSeconds: round(total.user + total.system - filesCpu),
  files,
};
mkdirSync(path.join(repo, "test-artifacts"), { recursive: true });
writeFileSync(path.join(repo, "test-artifacts", "test-cpu.json"), `${JSON.stringify(report, null, 2)}\n`);
console.log(
  `\n${report.wallSeconds} s wall, ${report.cpuSeconds} s CPU (files ${round(filesCpu)} s, runner ${report.runnerCpuSeconds} s)`,
);
console.log("   CPU s   wall s  CPU/wall  file");
for (const f of files) {
  const ratio = f.wallSeconds ? (f.cpuSeconds / f.wallSeconds).toFixed(2) : "-";
  const note = f.leftRunning.length > 0 ? `  (left running: ${f.leftRunning.join(" ")})` : "";
  console.log(
    `${f.cpuSeconds.toFixed(1).padStart(8)} ${String(f.wallSeconds ?? "-").padStart(8)} ${ratio.padStart(9)}  ${f.file}${f.group === "alone" ? " (alone)" : ""}${note}`,
  );
}
process.exitCode = code ?? 1;
