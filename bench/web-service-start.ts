/**
 * How long a new web-service process takes from fork to listening (what a single instance's
 * replacement spends after Redis is up), with and without the V8 code cache, in the same run:
 * rounds that fork each variant in turn against a real redis-server that is already up.
 *
 *   node --import tsx bench/web-service-start.ts [--runs 15] [--burners 2]
 *
 * Variants: Node itself (a file that only reports "listening": the floor of any start), the ESM
 * bundle as the AWS instances run it, the CommonJS bundle through the code-cache entry with no
 * cache (it compiles as usual), and the same with its cache. `--burners N` runs N CPU-bound
 * processes beside it, as a saturated machine.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startRedisProcess } from "../src/local/redis/process.ts";
import { findFreePort, sleep } from "../src/shared/net.ts";
import { bundleWebService, instanceEntry } from "../src/web-service/bundle.ts";
import { tempDir } from "../test/helpers.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "15" }, burners: { type: "string", default: "0" } },
});
const runs = Number(values.runs);
const dir = tempDir();
const bundle = await bundleWebService(path.join(dir, "build"), { codeCache: true });
const cached = instanceEntry(bundle);
if (cached.modulePath === bundle) throw new Error("no code-cache entry beside the bundle");
const floor = path.join(dir, "floor.mjs");
writeFileSync(floor, 'process.send({ type: "listening", port: 1 });\n');
const caches = () => readdirSync(path.dirname(bundle)).filter((f) => f.endsWith(".v8-code-cache"));

const redisPort = await findFreePort();
const redis = await startRedisProcess("127.0.0.1", redisPort, [
  "--port",
  String(redisPort),
  "--bind",
  "127.0.0.1",
  "--save",
  "",
  "--appendonly",
  "no",
]);
const burners: ChildProcess[] = [];
for (let i = 0; i < Number(values.burners); i++)
  burners.push(spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));

/** Forks one start; resolves with ms from fork to "listening" and the code-cache outcome it reported. */
async function start(modulePath: string, args: string[]): Promise<{ ms: number; cache?: string }> {
  const startedAt = performance.now();
  const child = fork(modulePath, args, {
    env: {
      ...process.env,
      STAYUP_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: [],
  });
  let cache: string | undefined;
  const ms = await new Promise<number>((resolve, reject) => {
    child.on("message", (m: { type?: string; outcome?: string }) => {
      if (m?.type === "code-cache") cache = m.outcome;
      if (m?.type === "listening") resolve(performance.now() - startedAt);
    });
    child.once("exit", (code) => reject(new Error(`exited before listening (code ${code})`)));
  });
  child.removeAllListeners("exit");
  child.kill("SIGKILL");
  await once(child, "exit");
  return { ms, cache };
}

try {
  // The cache, made once as an instance makes it: it listens, then writes what it compiled.
  const first = fork(cached.modulePath, cached.args, {
    env: { ...process.env, STAYUP_REDIS_URL: `redis://127.0.0.1:${redisPort}`, PORT: "0", HOST: "127.0.0.1" },
    stdio: "ignore",
  });
  while (caches().length === 0) await sleep(50);
  first.kill("SIGKILL");
  const [cacheName] = caches();
  const cacheFile = path.join(path.dirname(bundle), cacheName ?? "");
  const aside = `${cacheFile}.aside`;

  const variants: { name: string; run: () => Promise<{ ms: number; cache?: string }> }[] = [
    { name: "Node itself (floor)", run: () => start(floor, []) },
    { name: "ESM bundle (web-service.mjs)", run: () => start(bundle, []) },
    {
      name: "CJS bundle, no code cache",
      run: async () => {
        renameSync(cacheFile, aside);
        try {
          return await start(cached.modulePath, cached.args);
        } finally {
          // The start may have written a new cache meanwhile: the kept one goes back either way.
          renameSync(aside, cacheFile);
        }
      },
    },
    { name: "CJS bundle, with code cache", run: () => start(cached.modulePath, cached.args) },
  ];
  const results = new Map<string, { ms: number[]; caches: Set<string> }>();
  for (const v of variants) results.set(v.name, { ms: [], caches: new Set() });
  for (let round = 0; round < runs; round++) {
    for (const v of variants) {
      const r = await v.run();
      const entry = results.get(v.name);
      entry?.ms.push(r.ms);
      if (r.cache) entry?.caches.add(r.cache);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const quantile = (xs: number[], q: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;
  console.log(
    `${runs} rounds, ${burners.length} CPU burners, load average ${loadavg()[0]?.toFixed(1)}, cache ${existsSync(cacheFile) ? cacheName : "(none)"}`,
  );
  console.log("variant                          median ms   p10-p90 ms    code cache");
  for (const [name, r] of results) {
    console.log(
      `${name.padEnd(32)} ${median(r.ms).toFixed(0).padStart(9)}   ${quantile(r.ms, 0.1).toFixed(0)}-${quantile(r.ms, 0.9).toFixed(0)}`.padEnd(
        60,
      ) + [...r.caches].join(","),
    );
  }
  const esm = median(results.get("ESM bundle (web-service.mjs)")?.ms ?? []);
  const withCache = median(results.get("CJS bundle, with code cache")?.ms ?? []);
  const node = median(results.get("Node itself (floor)")?.ms ?? []);
  console.log(
    `with code cache / ESM bundle: ${(withCache / esm).toFixed(2)} (medians); above Node itself: ${(withCache - node).toFixed(0)} ms against ${(esm - node).toFixed(0)} ms`,
  );
} finally {
  for (const b of burners) b.kill("SIGKILL");
  redis.kill("SIGKILL");
}
