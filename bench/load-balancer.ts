/**
 * Throughput and latency through stayup's load balancer against nginx in front of the very same
 * instances, in the same run. Needs nginx and wrk (Debian: apt-get install nginx wrk).
 *
 *   npm run bench -- [--duration 10] [--connections 64] [--rounds 2] [--workers N]
 *
 * Prints one Markdown table; docs/benchmarks.md records a run.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { StackSession } from "../src/cli/stack-session.ts";
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
  latencyP50Ms: number;
  latencyP99Ms: number;
  non2xx: number;
  errors: number;
}

function toMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

// Asynchronous: the load balancer under test runs in this very process and must keep serving.
async function wrk(url: string): Promise<WrkResult> {
  const { stdout: out } = await promisify(execFile)(
    "wrk",
    [
      "-t",
      "2",
      "-c",
      values.connections,
      "-d",
      `${values.duration}s`,
      "--latency",
      "-H",
      "accept: application/json",
      url,
    ],
    { encoding: "utf8" },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? "");
  const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? "");
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { requestsPerSecond: rps, latencyP50Ms: p50, latencyP99Ms: p99, non2xx, errors };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const stack = await loadStack("stayup.config.ts", "dev");
if (values.workers) stack.loadBalancer.local.workers = Number(values.workers);
const workers = stack.loadBalancer.local.workers ?? 1;
const session = await StackSession.temporary(stack);
const status = await session.client.status();
const nginxPort = await findFreePort();
const nginxDir = path.join(process.env.TMPDIR ?? "/tmp", `stayup-bench-nginx-${process.pid}`);
execFileSync("mkdir", ["-p", nginxDir]);
// One worker, like stayup's single load-balancer process; upstream keep-alive like ours.
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

const results: Record<string, Record<string, WrkResult[]>> = {};
try {
  for (const route of ["/", "/health"]) {
    results[route] = { stayup: [], nginx: [] };
    for (let round = 0; round < Number(values.rounds); round++) {
      // Alternate the order so neither peer always runs on a warmer machine.
      const order = round % 2 === 0 ? ["stayup", "nginx"] : ["nginx", "stayup"];
      for (const peer of order) {
        const url =
          peer === "stayup"
            ? `${session.client.state.listener}${route}`
            : `http://127.0.0.1:${nginxPort}${route}`;
        results[route]?.[peer]?.push(await wrk(url));
      }
    }
  }
} finally {
  nginx.kill("SIGTERM");
  await session.stop();
}

console.log(
  `\n${status.instances.length} instances, stayup balancer: ${workers} process(es), outlier detection ${stack.loadBalancer.outlierDetection.maxEjectionPercent > 0 ? "on" : "off"}; nginx: 1 worker; wrk -t2 -c${values.connections} -d${values.duration}s, ${values.rounds} rounds (median)\n`,
);
console.log("| route | peer | requests/s | p50 ms | p99 ms | errors | stayup / nginx |");
console.log("|---|---|---|---|---|---|---|");
for (const [route, peers] of Object.entries(results)) {
  const rps = (peer: string) => median((peers[peer] ?? []).map((r) => r.requestsPerSecond));
  for (const peer of ["stayup", "nginx"]) {
    const runs = peers[peer] ?? [];
    console.log(
      `| \`${route}\` | ${peer} | ${rps(peer).toFixed(0)} | ${median(runs.map((r) => r.latencyP50Ms)).toFixed(2)} | ${median(runs.map((r) => r.latencyP99Ms)).toFixed(2)} | ${runs.reduce((a, r) => a + r.errors + r.non2xx, 0)} | ${peer === "stayup" ? (rps("stayup") / rps("nginx")).toFixed(2) : ""} |`,
    );
  }
}
