/**
 * CPU a command spends before it answers (issue 25, item 13), as a ratio to `node -e 0` measured
 * in the same run: user + system time of each process, from getrusage through GNU time.
 *
 *   node --import tsx bench/cli-cpu.ts [--runs 5]
 *
 * Commands: `--version`, `--help`, `status` and `down` with no stack (each answers at once), and
 * `status` of a running stack (one is started on free ports, and stopped at the end).
 * Each figure is the median of the runs, beside the same command through tsx (STAYUP_PREBUILT=0,
 * as every command ran before bin/prebuilt.mjs). The target: `--help` and `status` within 0.3 s of CPU.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { tempDir, upArgs } from "../test/helpers.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const runs = Number(values.runs);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(repo, "bin", "stayup.mjs");
const gnuTime = "/usr/bin/time";
if (!existsSync(gnuTime)) throw new Error("needs GNU time (/usr/bin/time): apt-get install -y time");

/** User + system seconds of one run of `args` (its children included, as getrusage counts them). */
function cpuSeconds(args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const result = spawnSync(gnuTime, ["-f", "%U %S", ...args], { encoding: "utf8", cwd: repo, env });
  const last = result.stderr.trim().split("\n").at(-1) ?? "";
  const [user, system] = last.split(" ").map(Number);
  if (user === undefined || system === undefined || Number.isNaN(user + system)) {
    throw new Error(`could not read the CPU time of ${args.join(" ")}: ${result.stderr}`);
  }
  return user + system;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const emptyState = path.join(tempDir(), ".stayup");
const stackDir = tempDir();
const stackState = path.join(stackDir, ".stayup");
execFileSync(process.execPath, [bin, ...upArgs(stackState), "--detach"], { cwd: stackDir, stdio: "ignore" });

const cases: [string, string[]][] = [
  ["node -e 0", [process.execPath, "-e", "0"]],
  ["stayup --version", [process.execPath, bin, "--version"]],
  ["stayup --help", [process.execPath, bin, "--help"]],
  ["stayup status (no stack)", [process.execPath, bin, "status", "--state-dir", emptyState]],
  ["stayup down (no stack)", [process.execPath, bin, "down", "--state-dir", emptyState]],
  ["stayup status (a running stack)", [process.execPath, bin, "status", "--state-dir", stackState]],
];
try {
  const rows = cases.map(([name, args]) => {
    const samples = Array.from({ length: runs }, () => cpuSeconds(args));
    // The same command through tsx, as every command ran before bin/prebuilt.mjs.
    const tsx = Array.from({ length: runs }, () =>
      cpuSeconds(args, { ...process.env, STAYUP_PREBUILT: "0" }),
    );
    return { name, seconds: median(samples), tsxSeconds: median(tsx) };
  });
  const floor = rows[0]?.seconds ?? NaN;
  console.log(`CPU (user + system), median of ${runs} runs`);
  for (const r of rows) {
    const ratio =
      r.name === "node -e 0" ? "" : `  ${(r.seconds / Math.max(floor, 0.01)).toFixed(1)}× node -e 0`;
    const tsx = r.name === "node -e 0" ? "" : `  (through tsx: ${r.tsxSeconds.toFixed(2)} s)`;
    console.log(`${r.name.padEnd(34)} ${r.seconds.toFixed(2).padStart(6)} s${ratio}${tsx}`);
  }
} finally {
  execFileSync(process.execPath, [bin, "down", "--state-dir", stackState], { stdio: "ignore" });
}
