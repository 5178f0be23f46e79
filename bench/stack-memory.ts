/**
 * What the default stack holds in memory at rest (issue 25, item 12): the resident set of the
 * runtime and of every process under it, read from /proc once the stack has been up and idle for
 * `--settle-seconds`. A stack is started on free ports with this repository's description and
 * stopped at the end.
 *
 *   node --import tsx bench/stack-memory.ts [--settle-seconds 10] [--foreground]
 *
 * `up --detach` by default (its runtime is started by stayup, with src/local/node-flags.ts's
 * flags); `--foreground` runs `up` as in a terminal, where the runtime is the user's own `node`.
 *
 * Two sums: RSS counts shared pages once per process (as `ps` and a laptop's activity monitor do):
 * twelve redis-servers each count the same 9 MiB of redis-server's code, three node processes the
 * same libnode. PSS (/proc/<pid>/smaps_rollup) splits each shared page among the processes that
 * map it: its sum is what the stack really takes from the machine. (A page shared with a process
 * outside the stack, the system's redis-server say, is split with it too: USS, the pages no other
 * process maps, is the floor, and is printed as well.) The figure compared with the target counts
 * every page once: each process's own pages (USS), plus the shared pages of each program (node,
 * redis-server) once, taken from the process of that program that maps the most of them.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { sleep } from "../src/shared/net.ts";
import { tempDir, upArgs } from "../test/helpers.ts";

const { values } = parseArgs({
  options: { "settle-seconds": { type: "string", default: "10" }, foreground: { type: "boolean" } },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(repo, "bin", "stayup.mjs");
const dir = tempDir();
const stateDir = path.join(dir, ".stayup");

interface Proc {
  pid: number;
  ppid: number;
  rssMiB: number;
  pssMiB: number;
  ussMiB: number;
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
      const rollup = readFileSync(`/proc/${entry}/smaps_rollup`, "utf8");
      const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(rollup)?.[1] ?? 0);
      out.push({
        pid: Number(entry),
        ppid,
        rssMiB: rssKiB / 1024,
        pssMiB: kib("Pss") / 1024,
        ussMiB: (kib("Private_Clean") + kib("Private_Dirty")) / 1024,
        command,
      });
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

const up = [bin, ...upArgs(stateDir)];
if (values.foreground) {
  const child = spawn(process.execPath, up, { cwd: dir, stdio: "ignore" });
  // Up once its state file names it (what `up --detach` waits for too).
  const deadline = Date.now() + 120_000;
  while (!existsSync(path.join(stateDir, "stack.json"))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGTERM"); // what the bench started, it stops
      throw new Error("`up` did not start");
    }
    await sleep(250);
  }
} else {
  execFileSync(process.execPath, [...up, "--detach"], { cwd: dir, stdio: "ignore" });
}
try {
  await sleep(Number(values["settle-seconds"]) * 1000);
  const status = JSON.parse(
    execFileSync(process.execPath, [bin, "status", "--json", "--state-dir", stateDir], { encoding: "utf8" }),
  ) as { pid: number };
  const all = processes();
  const runtime = all.find((p) => p.pid === status.pid);
  if (!runtime) throw new Error(`the runtime (pid ${status.pid}) is not running`);
  const rows = [runtime, ...descendants(runtime.pid, all)];
  const mib = (n: number) => n.toFixed(1).padStart(7);
  console.log(`    RSS      PSS      USS (MiB)  pid  command`);
  for (const p of rows) {
    console.log(`${mib(p.rssMiB)}  ${mib(p.pssMiB)}  ${mib(p.ussMiB)}  ${p.pid}  ${p.command.slice(0, 80)}`);
  }
  const sum = (f: (p: Proc) => number) => rows.reduce((total, p) => total + f(p), 0);
  console.log(
    `${mib(sum((p) => p.rssMiB))}  ${mib(sum((p) => p.pssMiB))}  ${mib(sum((p) => p.ussMiB))}  total, ${rows.length} processes`,
  );
  const sharedOnce = new Map<string, number>();
  for (const p of rows) {
    const program = path.basename(p.command.split(" ")[0] ?? "");
    sharedOnce.set(program, Math.max(sharedOnce.get(program) ?? 0, p.rssMiB - p.ussMiB));
  }
  const shared = [...sharedOnce.values()].reduce((a, b) => a + b, 0);
  const once = sum((p) => p.ussMiB) + shared;
  console.log(
    `every page once: ${once.toFixed(1)} MiB = ${sum((p) => p.ussMiB).toFixed(1)} MiB of the processes' own + ${[...sharedOnce].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(" + ")} MiB shared (target: at most 300 MB = ${(300e6 / 2 ** 20).toFixed(0)} MiB)`,
  );
} finally {
  execFileSync(process.execPath, [bin, "down", "--state-dir", stateDir], { stdio: "ignore" });
}
