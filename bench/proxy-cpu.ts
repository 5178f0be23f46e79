/**
 * CPU time per proxied request, the figure that decides throughput on a machine whose cores are
 * shared by the client, the proxy and the instances: stayup's balancer (outlier detection and
 * retries on, on raw sockets), the least a proxy built on Node's HTTP modules does (node:http in,
 * undici out, nothing else: "http-undici", the balancer's design before issue 13) and nginx
 * (1 worker), each in its own process in front of the same two trivial upstream processes.
 * Needs nginx and wrk.
 *
 *   node --import tsx bench/proxy-cpu.ts [--duration 5] [--rounds 3]
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { loadavg } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { Pool } from "undici";
import { EventBus } from "../src/local/events/bus.ts";
import { LoadBalancer, type TargetSource } from "../src/local/load-balancer/balancer.ts";
import type { Target } from "../src/local/target-group/controller.ts";
import { findExecutable, findFreePort, sleep } from "../src/shared/net.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    serve: { type: "string" },
    port: { type: "string" },
    upstreams: { type: "string" },
  },
});
const port = Number(values.port);
const upstreamPorts = (values.upstreams ?? "").split(",").map(Number);

// Child modes: one process per role, so /proc gives each one's CPU time alone.
// SIGTERM exits normally, so a process started with --cpu-prof writes its profile.
if (values.serve) process.on("SIGTERM", () => process.exit(0));
if (values.serve === "upstream") {
  const body = JSON.stringify({ status: "ok", instanceId: "i-0123456789abcdef", version: "0123456789ab" });
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, "127.0.0.1");
} else if (values.serve === "stayup") {
  const targets: Target[] = upstreamPorts.map((p, i) => ({
    instanceId: `i-${i}`,
    az: "a",
    host: "127.0.0.1",
    port: p,
    health: "healthy",
    consecutiveSuccesses: 2,
    consecutiveFailures: 0,
    registeredAt: 0,
  }));
  const source: TargetSource = {
    routable: () => targets,
    get: (id) => targets.find((t) => t.instanceId === id),
    reportConnectionFailure: () => undefined,
  };
  // The description's settings (stayup.config.ts).
  await new LoadBalancer(
    source,
    new EventBus(),
    { host: "127.0.0.1", port },
    {
      outlierDetection: {
        consecutiveFailures: 5,
        baseEjectionMs: 5000,
        maxEjectionMs: 60_000,
        maxEjectionPercent: 50,
      },
      retries: { maxAttempts: 3, perTryTimeoutMs: 500, budgetPercent: 20, minRetryConcurrency: 10 },
    },
  ).listen();
} else if (values.serve === "http-undici") {
  const pools = upstreamPorts.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: 128 }));
  let next = 0;
  http
    .createServer((req, res) => {
      const chunks: Buffer[] = [];
      let status = 0;
      let headers: Record<string, string | string[] | undefined> = {};
      pools[next++ % pools.length]?.dispatch(
        { method: "GET", path: req.url ?? "/", headers: req.headers as Record<string, string> },
        {
          onRequestStart: () => undefined,
          onResponseStart: (_c, s, h) => {
            status = s;
            headers = h;
          },
          onResponseData: (_c, chunk) => void chunks.push(chunk),
          onResponseEnd: () => {
            res.writeHead(status, headers);
            res.end(Buffer.concat(chunks));
          },
          onResponseError: () => void res.destroy(),
        },
      );
    })
    .listen(port, "127.0.0.1");
} else {
  await main();
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function main(): Promise<void> {
  const nginxBin = findExecutable("nginx") ?? "/usr/sbin/nginx";
  if (!findExecutable("wrk")) throw new Error("needs wrk and nginx: apt-get install -y nginx wrk");
  const self = new URL(import.meta.url).pathname;
  const children: ChildProcess[] = [];
  const start = (args: string[]) => {
    const child = spawn(process.execPath, ["--import", "tsx", self, ...args], { stdio: "inherit" });
    children.push(child);
    return child;
  };
  const ups = [await findFreePort(), await findFreePort()];
  for (const p of ups) start(["--serve", "upstream", "--port", String(p)]);
  const peers: { name: string; port: number; pids: () => number[] }[] = [];
  for (const name of ["stayup", "http-undici"]) {
    const p = await findFreePort();
    const child = start(["--serve", name, "--port", String(p), "--upstreams", ups.join(",")]);
    peers.push({ name, port: p, pids: () => [child.pid ?? 0] });
  }
  const dir = path.join(process.env.TMPDIR ?? "/tmp", `stayup-proxy-cpu-${process.pid}`);
  execFileSync("mkdir", ["-p", dir]);
  const nginxPort = await findFreePort();
  writeFileSync(
    path.join(dir, "nginx.conf"),
    `worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn; daemon off;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f;
  uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
  upstream instances { ${ups.map((p) => `server 127.0.0.1:${p};`).join(" ")} keepalive 128; }
  server { listen 127.0.0.1:${nginxPort};
    location / { proxy_pass http://instances; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
  );
  const nginx = spawn(nginxBin, ["-c", path.join(dir, "nginx.conf"), "-p", dir], { stdio: "inherit" });
  children.push(nginx);
  const nginxWorkers = () => {
    try {
      return readFileSync(`/proc/${nginx.pid}/task/${nginx.pid}/children`, "utf8")
        .trim()
        .split(/\s+/)
        .map(Number);
    } catch {
      return [];
    }
  };
  peers.push({ name: "nginx", port: nginxPort, pids: () => [nginx.pid ?? 0, ...nginxWorkers()] });
  const results = new Map<string, { rps: number[]; us: number[] }>(
    peers.map((p) => [p.name, { rps: [], us: [] }]),
  );
  const loadBefore = loadavg()[0]?.toFixed(1);
  try {
    // Until every proxy answers (a tsx child takes seconds to start on a busy machine).
    for (const peer of peers) {
      for (let i = 0; i < 120; i++) {
        const ok = await fetch(`http://127.0.0.1:${peer.port}/`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        await sleep(250);
      }
    }
    const wrk = (p: number, seconds: string) =>
      promisify(execFile)("wrk", ["-t2", "-c64", `-d${seconds}s`, `http://127.0.0.1:${p}/`], {
        encoding: "utf8",
      });
    for (const peer of peers) await wrk(peer.port, "2"); // warm-up
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const peer of round % 2 === 0 ? peers : [...peers].reverse()) {
        const pids = peer.pids();
        const before = pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
        const { stdout } = await wrk(peer.port, values.duration);
        const cpu = pids.reduce((a, pid) => a + cpuSeconds(pid), 0) - before;
        const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
        if (/Non-2xx|Socket errors/.test(stdout)) throw new Error(`${peer.name} had errors:\n${stdout}`);
        results.get(peer.name)?.rps.push(Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]));
        results.get(peer.name)?.us.push((1e6 * cpu) / requests);
      }
    }
  } finally {
    for (const child of children) child.kill("SIGTERM");
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  console.log(
    `\nwrk -t2 -c64 -d${values.duration}s, ${values.rounds} rounds (median); load average ${loadBefore} before, ${loadavg()[0]?.toFixed(1)} after\n`,
  );
  console.log("| proxy | CPU µs / request (user + system) | requests/s |\n|---|---|---|");
  for (const [name, r] of results)
    console.log(`| ${name} | ${median(r.us).toFixed(0)} | ${median(r.rps).toFixed(0)} |`);
}
