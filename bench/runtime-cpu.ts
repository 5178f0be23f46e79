/**
 * What the runtime of `up --detach` spends on traffic through its balancer, and the latency the
 * clients see: a stack on free ports, `--requests` GETs at `--rate` per second, the runtime's CPU
 * time (user + system, /proc/<pid>/stat, in clock ticks of 10 ms) over them. To weigh a flag of
 * src/local/node-flags.ts, run it with and without the flag, alternated.
 *
 *   node --import tsx bench/runtime-cpu.ts [--rate 400] [--seconds 10]
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { sleep } from "../src/shared/net.ts";
import { tempDir, upArgs } from "../test/helpers.ts";

const { values } = parseArgs({
  options: { rate: { type: "string", default: "400" }, seconds: { type: "string", default: "10" } },
});
const rate = Number(values.rate);
const total = rate * Number(values.seconds);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(repo, "bin", "stayup.mjs");
const dir = tempDir();
const stateDir = path.join(dir, ".stayup");

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

execFileSync(process.execPath, [bin, ...upArgs(stateDir), "--detach"], { cwd: dir, stdio: "ignore" });
try {
  const state = JSON.parse(readFileSync(path.join(stateDir, "stack.json"), "utf8")) as {
    pid: number;
    listener: string;
  };
  await sleep(3000);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const latenciesMs: number[] = [];
  let failed = 0;
  const get = () =>
    new Promise<void>((resolve) => {
      const start = process.hrtime.bigint();
      const req = http.get(`${state.listener}/`, { agent }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== 200) failed++;
          latenciesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
          resolve();
        });
      });
      req.on("error", () => {
        failed++;
        resolve();
      });
    });
  const before = cpuTicks(state.pid);
  const began = Date.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const wait = began + (i * 1000) / rate - Date.now();
    if (wait > 0) await sleep(wait);
    pending.push(get());
  }
  await Promise.all(pending);
  const ticks = cpuTicks(state.pid) - before;
  agent.destroy();
  latenciesMs.sort((a, b) => a - b);
  const at = (q: number) => (latenciesMs[Math.floor(q * (latenciesMs.length - 1))] ?? NaN).toFixed(2);
  console.log(
    `runtime CPU ${ticks} ticks for ${total} requests at ${rate}/s, ${failed} failed; latency p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, p99.9 ${at(0.999)} ms`,
  );
} finally {
  execFileSync(process.execPath, [bin, "down", "--state-dir", stateDir], { stdio: "ignore" });
}
