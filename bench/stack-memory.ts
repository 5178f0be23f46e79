/**
 * What the default stack holds in memory at rest (issue 25, item 12): the resident set of the
 * runtime and of every process under it, read from /proc once the stack has been up and idle for
 * `--settle-seconds`. A stack is started on free ports with this repository's description and
 * stopped at the end.
 *
 *   node --import tsx bench/stack-memory.ts [--settle-seconds 10]
 *
 * RSS counts shared pages once per process (as `ps` and a laptop's activity monitor do), so the
 * total is what a user sees, a little above what the machine really spends.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { sleep } from "../src/shared/net.ts";
import { tempDir } from "../test/helpers.ts";

const { values } = parseArgs({ options: { "settle-seconds": { type: "string", default: "10" } } });
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(repo, "bin", "stayup.mjs");
const dir = tempDir();
const stateDir = path.join(dir, ".stayup");

interface Proc {
  pid: number;
  ppid: number;
  rssMiB: number;
  command: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${entry}/status`, "utf8"))?.[1] ?? 0);
      const command = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim();
      out.push({ pid: Number(entry), ppid, rssMiB: rssKiB / 1024, command });
    } catch {
      // The process ended while we read it.
    }
  }
  return out;
}

function descendants(root: number, all: Proc[]): Proc[] {
  const found: Proc[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift();
    for (const p of all) {
      if (p.ppid === pid) {
        found.push(p);
        queue.push(p.pid);
      }
    }
  }
  return found;
}

execFileSync(
  process.execPath,
  [
    bin,
    "up",
    "--detach",
    "--config",
    path.join(repo, "stayup.config.ts"),
    "--state-dir",
    stateDir,
    "--port",
    "0",
    "--redis-port",
    "0",
    "--dns-port",
    "0",
  ],
  { cwd: dir, stdio: "ignore" },
);
try {
  await sleep(Number(values["settle-seconds"]) * 1000);
  const status = JSON.parse(
    execFileSync(process.execPath, [bin, "status", "--json", "--state-dir", stateDir], { encoding: "utf8" }),
  ) as { pid: number };
  const all = processes();
  const runtime = all.find((p) => p.pid === status.pid);
  if (!runtime) throw new Error(`the runtime (pid ${status.pid}) is not running`);
  const rows = [runtime, ...descendants(runtime.pid, all)];
  for (const p of rows) {
    console.log(`${p.rssMiB.toFixed(1).padStart(7)} MiB  ${p.pid}  ${p.command.slice(0, 90)}`);
  }
  const total = rows.reduce((sum, p) => sum + p.rssMiB, 0);
  console.log(
    `${total.toFixed(1).padStart(7)} MiB  total, ${rows.length} processes (target: at most 300 MB)`,
  );
} finally {
  execFileSync(process.execPath, [bin, "down", "--state-dir", stateDir], { stdio: "ignore" });
}
