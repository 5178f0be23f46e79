/**
 * The redis-failover drill many times in a row against one running stack, optionally beside
 * CPU-bound processes (issue 25, item 2: 20 runs in a row, and 10 beside two `for(;;);` loops).
 * Prints one line per run and a summary: runs, failed runs, failed requests, the longest write
 * outage and the longest promotion.
 *   npx stayup up --detach --port 0 --redis-port 0 --dns-port 0 --state-dir /tmp/s
 *   node --import tsx bench/redis-failover-repeat.ts --state-dir /tmp/s --runs 20 [--cpu-burners 2]
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const runs = Number(arg("runs", "20"));
const burnerCount = Number(arg("cpu-burners", "0"));
const stateDir = arg("state-dir", ".stayup");
const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bin/stayup.mjs");

const burners: ChildProcess[] = Array.from({ length: burnerCount }, () =>
  spawn(process.execPath, ["-e", "for(;;);"], { stdio: "ignore" }),
);
const stopBurners = () => {
  for (const b of burners) if (b.pid && b.exitCode === null) b.kill("SIGKILL");
};
process.on("exit", stopBurners);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));

interface Row {
  run: number;
  passed: boolean;
  requests: number;
  failed: number;
  promotedS: number | null;
  outageS: number;
  lost: number | null;
  load: number;
  why?: string;
}
const rows: Row[] = [];
for (let run = 1; run <= runs; run++) {
  let stdout = "";
  let code = 0;
  try {
    ({ stdout } = await promisify(execFile)(
      process.execPath,
      [cli, "drill", "redis-failover", "--json", "--state-dir", stateDir],
      { maxBuffer: 64 * 1024 * 1024 },
    ));
  } catch (error) {
    const e = error as { stdout?: string; code?: number; stderr?: string };
    stdout = e.stdout ?? "";
    code = e.code ?? 1;
    if (!stdout.trim()) console.error(e.stderr);
  }
  const r = JSON.parse(stdout || "{}") as Record<string, unknown>;
  const row: Row = {
    run,
    passed: code === 0,
    requests: Number(r.requests ?? 0),
    failed: Number(r.failed ?? 0),
    promotedS: (r.recoverySeconds as number | null) ?? null,
    outageS: Number(r.writeOutageSeconds ?? 0),
    lost: (r.acknowledgedLost as number | null) ?? null,
    load: Number(loadavg()[0]?.toFixed(1)),
    ...(r.whyNotPromoted ? { why: String(r.whyNotPromoted) } : {}),
    ...(r.whyFailedOverAgain ? { why: String(r.whyFailedOverAgain) } : {}),
  };
  rows.push(row);
  console.log(
    `run ${run}: ${row.passed ? "passed" : "FAILED"}  ${row.failed}/${row.requests} failed  promoted ${row.promotedS ?? "-"} s  write outage ${row.outageS} s  acknowledgedLost ${row.lost ?? "-"}  load ${row.load}${row.why ? `  why: ${row.why}` : ""}${row.failed ? `  failures ${JSON.stringify(r.failures)}` : ""}`,
  );
}
stopBurners();
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : 0);
console.log(
  `${runs} runs${burnerCount ? ` beside ${burnerCount} CPU-bound processes` : ""}: ${rows.filter((r) => !r.passed).length} failed runs, ${rows.reduce((n, r) => n + r.failed, 0)} failed requests of ${rows.reduce((n, r) => n + r.requests, 0)}, longest write outage ${max(rows.map((r) => r.outageS))} s, longest promotion ${max(rows.map((r) => r.promotedS ?? 0))} s, load average ${Math.min(...rows.map((r) => r.load))}–${max(rows.map((r) => r.load))}`,
);
process.exit(rows.every((r) => r.passed) ? 0 : 1);
