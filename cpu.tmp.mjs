// usage: node cpu.tmp.mjs <repo> ; CPU ticks of runtime and instances for N requests
import { execFileSync } from "node:child_process";
import { readFileSync, mkdtempSync } from "node:fs";
import { request } from "undici";
const repo = process.argv[2]; const bin = `${repo}/bin/stayup.mjs`;
const dir = mkdtempSync("/tmp/memrss/cpu-"); const sd = `${dir}/.stayup`;
execFileSync(process.execPath, [bin, "up", "--detach", "--config", `${repo}/stayup.config.ts`, "--state-dir", sd, "--port", "0", "--redis-port", "0", "--dns-port", "0"], { cwd: dir, stdio: "ignore" });
const st = JSON.parse(execFileSync(process.execPath, [bin, "status", "--json", "--state-dir", sd], { encoding: "utf8" }));
const pids = [st.pid, ...st.instances.map((i) => i.pid)];
const ticks = () => pids.map((p) => { const f = readFileSync(`/proc/${p}/stat`, "utf8"); const a = f.slice(f.lastIndexOf(")") + 2).split(" "); return Number(a[11]) + Number(a[12]); });
const t0 = ticks(); const N = Number(process.env.N ?? 4000); let i = 0;
await Promise.all(Array.from({ length: 8 }, async () => { while (i++ < N) { const r = await request(st.listener + "/"); await r.body.text(); } }));
const t1 = ticks();
console.log(repo, "ticks (runtime, instances):", t1.map((v, k) => v - t0[k]).join(" "));
execFileSync(process.execPath, [bin, "down", "--state-dir", sd], { stdio: "ignore" });
