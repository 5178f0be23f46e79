/**
 * Throughput and latency through stayup's load balancer against nginx in front of the very same
 * instances, in the same run. Needs nginx and wrk (Debian: apt-get install nginx wrk).
 *
 *   npm run bench -- [--duration 10] [--connections 64] [--rounds 2] [--workers N]
 *
 * Prints one Markdown table; docs/benchmarks.md records a run. A run is valid only if neither peer
 * had an error and the instances stayed the same throughout: otherwise no ratio is printed.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { StackSession } from "../src/cli/stack-session.ts";
import type { TimedStackEvent } from "../src/local/events/bus.ts";
import { LoadBalancerWorkers } from "../src/local/load-balancer/workers.ts";
import { findExecutable, findFreePort, sleep } from "../src/shared/net.ts";
import { loadStack } from "../src/stack/index.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    connections: { type: "string", default: "64" },
    rounds: { type: "string", default: "2" },
    /** Balancer processes sharing the listener (loadBalancer.local.workers); default: the description's. */
    workers: { type: "string" },
  },
});

const nginxBin = findExecutable("nginx") ?? "/usr/sbin/nginx";
if (!findExecutable("wrk") || !existsSync(nginxBin)) {
  console.error("the benchmark needs nginx and wrk: apt-get install -y nginx wrk");
  process.exit(1);
}

interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  non2xx: number;
  errors: number;
  /** CPU seconds the peer's proxy processes spent during the run (stayup: its balancer process(es)). */
  proxyCpuSeconds: number;
  /** CPU seconds the instances spent during the run (the same work behind either peer). */
  instanceCpuSeconds: number;
  /** Changes to the instance set during the run (scaling, replacement): they make the run invalid. */
  changes: string[];
}

function toMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

const clockTicksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** CPU seconds (user + system) a process has used so far, from /proc; 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
  } catch {
    return 0;
  }
}

const childPids = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
};

// Asynchronous: the load balancer under test may run in this very process and must keep serving.
async function wrk(url: string, seconds: string, proxyPids: () => number[]): Promise<WrkResult> {
  const pids = proxyPids();
  const cpuBefore = pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
  const instanceCpuBefore = instancePids.reduce((a, pid) => a + cpuSeconds(pid), 0);
  const startedAt = performance.now();
  const changesBefore = instanceChanges.length;
  const { stdout: out } = await promisify(execFile)(
    "wrk",
    [
      "-t",
      "2",
      "-c",
      values.connections,
      "-d",
      `${seconds}s`,
      "--latency",
      "-H",
      "accept: application/json",
      url,
    ],
    { encoding: "utf8" },
  );
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  const idle = pids.includes(process.pid) ? runtimeIdleCpu * elapsedSeconds : 0;
  const proxyCpuSeconds = pids.reduce((a, pid) => a + cpuSeconds(pid), 0) - cpuBefore - idle;
  const instanceCpuSeconds = instancePids.reduce((a, pid) => a + cpuSeconds(pid), 0) - instanceCpuBefore;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? "");
  const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? "");
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    requestsPerSecond: rps,
    requests,
    latencyP50Ms: p50,
    latencyP99Ms: p99,
    non2xx,
    errors,
    proxyCpuSeconds,
    instanceCpuSeconds,
    changes: instanceChanges.slice(changesBefore),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");

const stack = await loadStack("stayup.config.ts", "dev");
if (values.workers) stack.loadBalancer.local.workers = Number(values.workers);
const workers = stack.loadBalancer.local.workers ?? 1;
// The bench measures the proxy path over a fixed set of instances. nginx knows only the ports it was
// given: with scaling on, the bench's own load scaled the group out (stayup then balanced over 4
// instances) and back in, stopping instances nginx still sent to ("no live upstreams": every nginx
// error of the earlier runs). So the group is pinned at its desired capacity.
const { desired } = stack.web.capacity;
stack.web.capacity = { min: desired, desired, max: desired };
const session = await StackSession.temporary(stack);
/** Events that change what either peer balances over; any during a measurement invalidates it. */
const instanceChanges: string[] = [];
const CHANGES = /^(instance\.|group\.capacity-changed|target\.(registered|unhealthy|deregistered))/;
const ejections: TimedStackEvent[] = [];
session.stack.events.subscribe((e) => {
  if (e.region && e.region !== stack.regions.primary.name) return;
  if (CHANGES.test(e.type)) instanceChanges.push(`${e.type} ${"instanceId" in e ? e.instanceId : ""}`.trim());
  if (e.type === "target.ejected") ejections.push(e);
});
const status = await session.client.status();
const nginxPort = await findFreePort();
const nginxDir = path.join(process.env.TMPDIR ?? "/tmp", `stayup-bench-nginx-${process.pid}`);
execFileSync("mkdir", ["-p", nginxDir]);
// One worker; upstream keep-alive like stayup's balancer.
writeFileSync(
  path.join(nginxDir, "nginx.conf"),
  `worker_processes 1;
pid ${nginxDir}/nginx.pid;
error_log ${nginxDir}/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${nginxDir}/body;
  proxy_temp_path ${nginxDir}/proxy;
  fastcgi_temp_path ${nginxDir}/fastcgi;
  uwsgi_temp_path ${nginxDir}/uwsgi;
  scgi_temp_path ${nginxDir}/scgi;
  upstream instances {
${status.instances.map((i) => `    server 127.0.0.1:${i.port};`).join("\n")}
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${nginxPort};
    location / {
      proxy_pass http://instances;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
    }
  }
}
`,
);
const nginx = spawn(nginxBin, ["-c", path.join(nginxDir, "nginx.conf"), "-p", nginxDir], {
  stdio: "inherit",
});
await sleep(500);

const balancer = session.stack.loadBalancer;
const instancePids = status.instances.map((i) => i.pid);
// With one balancer process, it is this process, where the runtime's controllers (health checks,
// scaling, DNS) also run: their CPU with no traffic is measured first and taken off the balancer's.
const idleFrom = cpuSeconds(process.pid);
await sleep(3000);
const runtimeIdleCpu = (cpuSeconds(process.pid) - idleFrom) / 3;
const proxyPids: Record<string, () => number[]> = {
  // One balancer process: it runs in this process, beside the runtime's controllers.
  stayup: () => (balancer instanceof LoadBalancerWorkers ? balancer.pids() : [process.pid]),
  nginx: () => (nginx.pid === undefined ? [] : [nginx.pid, ...childPids(nginx.pid)]),
};
const urlOf = (peer: string, route: string) =>
  peer === "stayup" ? `${session.client.state.listener}${route}` : `http://127.0.0.1:${nginxPort}${route}`;

const loadBefore = load();
const results: Record<string, Record<string, WrkResult[]>> = {};
try {
  for (const route of ["/", "/health"]) {
    results[route] = { stayup: [], nginx: [] };
    // Warm-up, not counted: JIT, connection pools, so the first peer measured does not meet a cold stack.
    for (const peer of ["stayup", "nginx"]) await wrk(urlOf(peer, route), "2", () => []);
    for (let round = 0; round < Number(values.rounds); round++) {
      // Alternate the order so neither peer always runs on a warmer machine.
      const order = round % 2 === 0 ? ["stayup", "nginx"] : ["nginx", "stayup"];
      for (const peer of order) {
        results[route]?.[peer]?.push(
          await wrk(urlOf(peer, route), values.duration, proxyPids[peer] ?? (() => [])),
        );
      }
    }
  }
} finally {
  nginx.kill("SIGTERM");
  await session.stop();
}
const loadAfter = load();

console.log(
  `\n${status.instances.length} instances (pinned), stayup balancer: ${workers} process(es), outlier detection ${stack.loadBalancer.outlierDetection.maxEjectionPercent > 0 ? "on" : "off"}; nginx: 1 worker; wrk -t2 -c${values.connections} -d${values.duration}s, ${values.rounds} rounds (median); load average ${loadBefore} before, ${loadAfter} after${workers === 1 ? `; the runtime's own CPU with no traffic (${(runtimeIdleCpu * 1000).toFixed(0)} ms/s) is not counted as the balancer's` : ""}\n`,
);
console.log(
  "| route | peer | requests/s | p50 ms | p99 ms | errors | proxy CPU µs / request | instances CPU µs / request | stayup / nginx |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
const verdicts: string[] = [];
let valid = true;
for (const [route, peers] of Object.entries(results)) {
  const runs = (peer: string) => peers[peer] ?? [];
  const rps = (peer: string) => median(runs(peer).map((r) => r.requestsPerSecond));
  const p99 = (peer: string) => median(runs(peer).map((r) => r.latencyP99Ms));
  const errors = (peer: string) => runs(peer).reduce((a, r) => a + r.errors + r.non2xx, 0);
  const changes = [...new Set(Object.values(peers).flatMap((rs) => rs.flatMap((r) => r.changes)))];
  // A ratio against a peer that failed requests, or over instances that changed, means nothing.
  const invalid = [
    ...["stayup", "nginx"]
      .filter((peer) => errors(peer) > 0)
      .map((peer) => `${peer} had ${errors(peer)} errors`),
    ...(changes.length > 0 ? [`instances changed: ${changes.join(", ")}`] : []),
  ];
  const ratio = rps("stayup") / rps("nginx");
  const p99Factor = p99("stayup") / p99("nginx");
  if (invalid.length > 0) valid = false;
  else
    verdicts.push(
      `${route} ${ratio >= 0.8 && p99Factor <= 2 ? "meets" : "misses"} the target (${ratio.toFixed(2)}, p99 ${p99Factor.toFixed(1)}×)`,
    );
  for (const peer of ["stayup", "nginx"]) {
    const requests = runs(peer).reduce((a, r) => a + r.requests, 0);
    const perRequestUs = (seconds: (r: WrkResult) => number) =>
      ((1e6 * runs(peer).reduce((a, r) => a + seconds(r), 0)) / requests).toFixed(0);
    const ratioCell =
      peer !== "stayup"
        ? ""
        : invalid.length > 0
          ? `invalid: ${invalid.join("; ")}`
          : `**${ratio.toFixed(2)}** (p99 ${p99Factor.toFixed(1)}×)`;
    console.log(
      `| \`${route}\` | ${peer} | ${rps(peer).toFixed(0)} | ${median(runs(peer).map((r) => r.latencyP50Ms)).toFixed(2)} | ${p99(peer).toFixed(2)} | ${errors(peer)} | ${perRequestUs((r) => r.proxyCpuSeconds)} | ${perRequestUs((r) => r.instanceCpuSeconds)} | ${ratioCell} |`,
    );
  }
}
console.log(
  `\n${ejections.length} ejection(s) by outlier detection during the run${ejections.length ? `: ${ejections.map((e) => ("instanceId" in e ? e.instanceId : "")).join(", ")}` : ""}.`,
);
console.log(
  valid
    ? `Target (≥ 0.8 of nginx's requests/s, p99 ≤ 2× nginx's, both routes): ${verdicts.join("; ")}.`
    : "INVALID RUN: no ratio is computed for a route where a peer had errors or the instances changed.",
);
if (valid) rmSync(nginxDir, { recursive: true, force: true });
else {
  console.log(`nginx's error log (kept): ${path.join(nginxDir, "error.log")}`);
  process.exitCode = 2;
}
