/**
 * Where a Redis failover's write outage goes, on real redis-server and Sentinel processes (the
 * local stack's RedisReplicationController, three nodes, three Sentinels, the stack's timings):
 * SIGKILLs the primary a few times and prints, per run and from the kill, every Sentinel event,
 * each node's replication state as it changes, and when a write (INCR, then WAIT 1 as the counter
 * does) was first accepted by the node the Sentinels name primary.
 *   node --import tsx bench/redis-failover-timeline.ts [runs] [--quiet]
 */
import { loadavg } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";
import { localRedisPassword } from "../src/local/redis/process.ts";
import { RedisReplicationController, sentinelMasterName } from "../src/local/redis/replication.ts";
import { sleep } from "../src/shared/net.ts";
import { LOCAL_SENTINEL_TIMING } from "../src/stack/region-failover-timing.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

const runs = Number(process.argv[2] ?? 3);
const quiet = process.argv.includes("--quiet");
const stateDir = mkdtempSync(path.join(tmpdir(), "stayup-failover-timeline-"));
const password = localRedisPassword(stateDir);
const events = new EventBus();
const timeline: TimedStackEvent[] = [];
events.subscribe((e) => timeline.push(e));
const redis = new RedisReplicationController({
  host: "127.0.0.1",
  port: 0,
  dataDir: path.join(stateDir, "redis"),
  availabilityZones: ["az-a", "az-b", "az-c"],
  replicasToAcknowledge: 1,
  events,
  password,
  ...LOCAL_SENTINEL_TIMING,
});

const client = (port: number) => {
  const c = new Redis({
    host: "127.0.0.1",
    port,
    password,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
    commandTimeout: 1000,
  });
  c.on("error", () => undefined);
  return c;
};

async function ask<T>(port: number, fn: (c: Redis) => Promise<T>): Promise<T | undefined> {
  const c = client(port);
  try {
    await c.connect();
    return await fn(c);
  } catch {
    return undefined;
  } finally {
    c.disconnect();
  }
}

const summaries: { run: number; switchMs: number | null; firstWriteMs: number | null }[] = [];
await redis.start();
try {
  for (let run = 1; run <= runs; run++) {
    // Every replica in sync before the kill, as the drill waits.
    for (let i = 0; i < 600 && !redis.nodeStatus().every((n) => n.role === "primary" || n.inSync); i++)
      await sleep(100);
    const primary = redis.nodeStatus().find((n) => n.role === "primary");
    if (!primary?.pid) throw new Error("no primary");
    // Some writes before the kill, as traffic would make.
    await ask(primary.port, async (c) => {
      for (let i = 0; i < 200; i++) await c.incr("count");
      return c.wait(1, 1000);
    });
    const sentinelPort = Number(
      /127\.0\.0\.1:(\d+)/.exec(redis.environment().STAYUP_REDIS_SENTINELS ?? "")?.[1],
    );
    const lines: string[] = [];
    const killedAt = Date.now();
    const at = (t = Date.now()) => `${((t - killedAt) / 1000).toFixed(3).padStart(7)} s`;
    const sub = new Redis({ host: "127.0.0.1", port: sentinelPort, password });
    sub.on("error", () => undefined);
    await sub.psubscribe("*");
    sub.on("pmessage", (_p: string, channel: string, message: string) => {
      if (channel === "__sentinel__:hello") return;
      lines.push(`${at()} sentinel ${channel} ${message}`);
    });
    const from = timeline.length;
    process.kill(primary.pid, "SIGKILL");
    lines.push(`${at(killedAt)} SIGKILL primary ${primary.name} (${primary.port})`);
    let firstWriteAt: number | undefined;
    let lastError = "";
    const states = new Map<string, string>();
    const deadline = killedAt + 30_000;
    while (Date.now() < deadline && firstWriteAt === undefined) {
      await Promise.all(
        redis.nodes.map(async (n) => {
          const info = await ask(n.port, (c) => c.info("replication"));
          const pick = (k: string) => new RegExp(`${k}:(\\S+)`).exec(info ?? "")?.[1] ?? "-";
          const state = info
            ? `role ${pick("role")} master_port ${pick("master_port")} link ${pick("master_link_status")} sync_in_progress ${pick("master_sync_in_progress")} replicas ${pick("connected_slaves")} good ${pick("min_slaves_good_slaves")}`
            : "down";
          if (states.get(n.name) !== state) {
            states.set(n.name, state);
            lines.push(`${at()} ${n.name} (${n.port}) ${state}`);
          }
        }),
      );
      const named = await ask(sentinelPort, (c) =>
        c.call("SENTINEL", "get-master-addr-by-name", sentinelMasterName),
      );
      const port = Number((named as string[] | undefined)?.[1]);
      if (port && port !== primary.port) {
        const result = await ask(port, async (c) => {
          try {
            await c.incr("count");
            const acked = await c.wait(1, 200);
            return acked >= 1 ? "ok" : `WAIT answered ${acked}`;
          } catch (error) {
            return (error as Error).message;
          }
        });
        if (result === "ok") firstWriteAt = Date.now();
        else if (result && result !== lastError) {
          lastError = result;
          lines.push(`${at()} write to ${port}: ${result}`);
        }
      }
      await sleep(20);
    }
    lines.push(`${at(firstWriteAt)} first write accepted and acknowledged`);
    await sleep(500);
    sub.disconnect();
    for (const e of timeline.slice(from)) lines.push(`${at(Date.parse(e.time))} event ${JSON.stringify(e)}`);
    const switched = timeline.slice(from).find((e) => e.type === "redis.failover");
    summaries.push({
      run,
      switchMs: switched ? Date.parse(switched.time) - killedAt : null,
      firstWriteMs: firstWriteAt ? firstWriteAt - killedAt : null,
    });
    if (!quiet) {
      console.log(`--- run ${run} (load average ${loadavg()[0]?.toFixed(1)})`);
      console.log(lines.sort().join("\n"));
    }
  }
} finally {
  await redis.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
console.log("run  +switch-master  first acknowledged write  (ms from the kill)");
for (const s of summaries) console.log(`${s.run}    ${s.switchMs}           ${s.firstWriteMs}`);
