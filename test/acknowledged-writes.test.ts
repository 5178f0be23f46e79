import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { request } from "undici";
import type { DrillReport } from "../src/drills/report.ts";
import { chooseStartPrimary } from "../src/local/redis/replication.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { bundleWebService } from "../src/web-service/bundle.ts";
import { repoRoot, runCli, tempDir, testRedisReplication, upDetached, waitFor } from "./helpers.ts";

describe("which node starts as primary (pure)", () => {
  const nodes = ["redis-a", "redis-b", "redis-c"];
  it("a fresh stack starts from the first node", () => {
    assert.equal(chooseStartPrimary(nodes, {}).node, "redis-a");
  });
  it("otherwise the node that was primary when the stack last ran", () => {
    assert.equal(chooseStartPrimary(nodes, { primary: "redis-c" }).node, "redis-c");
  });
  it("in doubt, the highest replication offset wins over the remembered primary", () => {
    const record = { primary: "redis-a", offsets: { "redis-a": 100, "redis-b": 250, "redis-c": 240 } };
    assert.equal(chooseStartPrimary(nodes, record).node, "redis-b");
  });
  it("equal offsets keep the remembered primary", () => {
    const record = { primary: "redis-c", offsets: { "redis-a": 7, "redis-b": 7, "redis-c": 7 } };
    assert.equal(chooseStartPrimary(nodes, record).node, "redis-c");
  });
});

/** The web service (the real bundle) over three real Redis nodes under Sentinel. */
describe("a count is answered only once a replica holds it", { timeout: 180_000 }, () => {
  const { stateDir, password, redis } = testRedisReplication();
  let instance: ChildProcess | undefined;
  let url = "";
  const frozen: number[] = [];

  before(async () => {
    await redis.start();
    const entry = await bundleWebService(path.join(stateDir, "build"));
    instance = fork(entry, [], {
      env: {
        ...process.env,
        ...redis.environment(),
        STAYUP_INSTANCE_ID: "i-acked0001",
        STAYUP_REDIS_WRITE_HOLD_MS: "1500",
        HOST: "127.0.0.1",
        PORT: "0",
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const port = await new Promise<number>((resolve, reject) => {
      instance?.on("message", (m: { type?: string; port?: number }) => {
        if (m.type === "listening") resolve(m.port ?? 0);
      });
      instance?.once("exit", (code) => reject(new Error(`instance exited with ${code}`)));
    });
    url = `http://127.0.0.1:${port}/`;
  });
  after(async () => {
    for (const pid of frozen) process.kill(pid, "SIGCONT");
    instance?.kill("SIGKILL");
    await redis.stop();
  });

  const get = async () => {
    const res = await request(url, { headers: { accept: "application/json" } });
    return { status: res.statusCode, body: (await res.body.json()) as { count?: number; reason?: string } };
  };

  it("answers 200 with a count while a replica acknowledges", async () => {
    const first = await waitFor("a 200", async () => {
      const r = await get();
      return r.status === 200 ? r : undefined;
    });
    assert.equal(typeof first.body.count, "number");
  });

  it("with every replica stopped, never answers 200 with a count; the primary refuses the write", async () => {
    for (const node of redis.nodes) {
      if (node.port !== redis.masterPort && node.process?.pid) {
        process.kill(node.process.pid, "SIGSTOP"); // unreachable, not dead: nothing restarts it
        frozen.push(node.process.pid);
      }
    }
    assert.equal(frozen.length, 2);
    // Requests in flight at the moment of the loss and every one after: 503, with the reason.
    const answers = [];
    for (let round = 0; round < 4; round++) {
      answers.push(...(await Promise.all(Array.from({ length: 10 }, () => get()))));
    }
    for (const a of answers) {
      assert.equal(a.status, 503, `answered ${a.status} with count ${a.body.count}`);
      assert.equal(a.body.count, undefined);
      assert.match(a.body.reason ?? "", /redis unavailable: .*(replica|NOREPLICAS)/);
    }
    // min-replicas-to-write: the primary itself refuses a write no replica takes.
    const direct = new Redis({ host: "127.0.0.1", port: redis.masterPort, password });
    await waitFor("NOREPLICAS", async () =>
      direct.incr("count").then(
        () => undefined,
        (e: Error) => (/NOREPLICAS/.test(e.message) ? true : undefined),
      ),
    );
    direct.disconnect();
  });

  it("answers 200 again once a replica is back", async () => {
    for (const pid of frozen.splice(0)) process.kill(pid, "SIGCONT");
    const back = await waitFor(
      "a 200",
      async () => {
        const r = await get();
        return r.status === 200 ? r : undefined;
      },
      30_000,
    );
    assert.equal(typeof back.body.count, "number");
  });
});

/** A primary killed under load through the real CLI, then `stayup down` + `stayup up`. */
describe("redis-failover drill and restart from the newest copy", { timeout: 300_000 }, () => {
  const stateDir = path.join(tempDir(), ".stayup");
  // The primary region's Redis group is the one drilled: the secondary region is not exercised.
  const config = path.join(repoRoot, "test/fixtures/one-region.config.ts");
  const up = async () => {
    await upDetached(stateDir, { config });
  };
  const status = async () =>
    JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as StackStatus;
  let report: DrillReport;

  before(async () => {
    await up();
  });
  after(async () => {
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("kills the primary under load: 0 failed requests, no acknowledged count lost", async () => {
    // Half a second of steady traffic before and after the failover (1.5 s each by default): the
    // figures checked are the failover's.
    const phases = ["--warmup-seconds", "0.5", "--cooldown-seconds", "0.5"];
    const res = await runCli(
      ["drill", "redis-failover", "--json", ...phases, "--config", config, "--state-dir", stateDir],
      {
        timeoutMs: 180_000,
      },
    );
    report = JSON.parse(res.stdout) as DrillReport;
    assert.equal(report.failed, 0, JSON.stringify(report.failures));
    assert.equal(report.acknowledgedLost, 0);
    assert.ok((report.countAfterRecovery as number) > (report.highestCountSeen as number));
    assert.equal(report.counterContinuous, true);
    assert.notEqual(report.newPrimary, null);
    assert.equal(typeof report.p99DuringFailoverMs, "number");
    assert.equal(res.code, 0, res.stderr);
  });

  it("after `stayup down` + `stayup up`, the promoted node is primary and the count continues", async () => {
    const promoted = report.newPrimary as { az: string };
    const down = await runCli(["down", "--state-dir", stateDir]);
    assert.equal(down.code, 0, down.stderr);
    await up();
    const s = await status();
    assert.equal(s.redis.nodes?.find((n) => n.role === "primary")?.az, promoted.az);
    const res = await request(`${s.listener}/`, { headers: { accept: "application/json" } });
    assert.equal(res.statusCode, 200);
    const { count } = (await res.body.json()) as { count: number };
    assert.ok(count > (report.countAfterRecovery as number), `count ${count} after restart`);
  });
});
