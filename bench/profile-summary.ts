/**
 * Where a process's CPU time went, from a V8 CPU profile (`node --cpu-prof`): self time grouped by
 * area (Node's HTTP server, undici, stayup's balancer, GC, ...) and the top functions.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/load-balancer.ts --duration 6 --rounds 1
 *   node --import tsx bench/profile-summary.ts /tmp/prof/*.cpuprofile
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function area(url: string, name: string): string {
  if (name === "(garbage collector)") return "GC";
  if (name === "(idle)") return "idle";
  if (name === "(program)") return "V8/native (program)";
  if (url.includes("/undici/")) return "undici (upstream client)";
  if (url.includes("src/local/load-balancer/")) return "stayup load balancer";
  if (url.includes("/src/") || url.includes("/bench/")) return "stayup other (controllers, bench)";
  if (url.startsWith("node:internal/modules") || url.includes("/tsx/")) return "module loading (startup)";
  if (/node:_http|node:http|_http_/.test(url)) return "node:http (listener)";
  if (/node:net|node:stream|node:internal\/streams|node:internal\/stream_base/.test(url))
    return "node:net/streams";
  if (url.startsWith("node:")) return "node: other";
  if (url === "" && /^write(v|Buffer|Latin1String|Utf8String)$/.test(name)) return "native socket writes";
  if (url === "" && /^(read|readStart|onStreamRead)$/.test(name)) return "native socket reads";
  if (url === "") return "native other";
  return "other modules";
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: bench/profile-summary.ts FILE.cpuprofile...");
  process.exit(1);
}
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const a = area(url, functionName);
    if (a === "idle") {
      idle += us;
      continue;
    }
    total += us;
    areas.set(a, (areas.get(a) ?? 0) + us);
    const key = `${functionName || "(anonymous)"} ${url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(src|bench)\//, "$1/")}:${lineNumber + 1}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  console.log(`\n${file}: ${(total / 1e6).toFixed(1)} s busy, ${(idle / 1e6).toFixed(1)} s idle\n`);
  console.log("| area | share of busy time |\n|---|---|");
  for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1]))
    console.log(`| ${a} | ${((100 * us) / total).toFixed(1)} % |`);
  console.log("\n| function (self time) | share |\n|---|---|");
  for (const [f, us] of [...functions].sort((x, y) => y[1] - x[1]).slice(0, Number(process.env.TOP ?? 15)))
    console.log(`| \`${f}\` | ${((100 * us) / total).toFixed(1)} % |`);
}
