import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import type { DrillReport } from "../src/drills/report.ts";
import { StackClient } from "../src/local/control-plane/client.ts";
import type { TimedStackEvent } from "../src/local/events/bus.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { isProcessAlive } from "../src/shared/process-info.ts";
import { SENTINELS_PER_REGION } from "../src/stack/derived.ts";
import { cliPath, configPath, isAlive, repoRoot, runCli, tempDir, upDetached, waitFor } from "./helpers.ts";

type Signal = "SIGINT" | "SIGTERM" | "SIGHUP" | "SIGKILL";

interface RunningDrill {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The description with its primary region only: for the temporary stacks whose interruption while
 * starting is what is tested (the SIGHUP test keeps both regions, and checks every process of both).
 */
const oneRegionConfig = path.join(repoRoot, "test/fixtures/one-region.config.ts");

function startDrill(
  args: string[],
  onOutput: () => void = () => undefined,
  config = configPath,
): RunningDrill {
  const child = spawn(process.execPath, [cliPath, "drill", ...args, "--config", config], {
    cwd: repoRoot,
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d;
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d;
    onOutput();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/**
 * Something may have changed: an event from the stack's control plane or a line from a drill.
 * The waits below look at the stack again on each change (and once a second without one) rather
 * than every 50 ms: each look is a status the runtime computes, CPU taken from the stack under test.
 */
class Changes {
  private wake: (() => void) | undefined;
  private changed = false;
  readonly poke = (): void => {
    this.changed = true;
    this.wake?.();
  };
  /** Resolves on the next change (at once if one came since the last call), or after `ms`. */
  async next(ms: number): Promise<void> {
    if (!this.changed) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
    }
    this.wake = undefined;
    this.changed = false;
  }
}

/** Like helpers' waitFor, but `fn` runs again only once `changes` saw something (or a second passed). */
async function waitOn<T>(
  what: string,
  changes: Changes,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}`);
    await changes.next(Math.min(1000, deadline - Date.now()));
  }
}

/** What is not as a drill found it: impaired zones, regions down, faults in force, Redis nodes down. */
function brokenParts(status: StackStatus): string[] {
  return [
    ...status.regions.flatMap((r) =>
      r.availabilityZones.filter((z) => z.impaired).map((z) => `zone ${z.name} impaired`),
    ),
    ...status.regions.filter((r) => r.down).map((r) => `region ${r.name} down`),
    ...(status.faults ?? []).map((f) => `fault in force: ${f.description}`),
    ...(status.redis.nodes ?? []).filter((n) => !n.pid).map((n) => `Redis node ${n.name} down`),
    // An AZ outage stops its zone's node (SIGSTOP): alive, and out of reach until continued.
    ...(status.redis.nodes ?? [])
      .filter((n) => n.pid && processState(n.pid) === "T")
      .map((n) => `Redis node ${n.name} stopped`),
  ];
}

/** The state letter in /proc/<pid>/stat ("T": stopped by a signal), or "?" when it is gone. */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "?";
  }
}

/** GET / on each instance in service, straight to its port: no injected fault answers. */
async function everyInstanceAnswers(status: StackStatus): Promise<void> {
  for (const i of status.instances.filter((x) => x.state === "in-service")) {
    // Faults below are injected as 60 s of latency or a 5xx: an answer within 20 s is no fault.
    const res = await request(`http://127.0.0.1:${i.port}/`, {
      headers: { accept: "application/json" },
      headersTimeout: 20_000,
      bodyTimeout: 20_000,
    });
    const body = await res.body.text();
    assert.equal(res.statusCode, 200, `${i.id}: ${body}`);
  }
}

/** The version every instance in service answers GET / with (one version, or the test fails). */
async function servedVersion(status: StackStatus): Promise<string> {
  const versions = new Set<string>();
  for (const i of status.instances.filter((x) => x.state === "in-service")) {
    const res = await request(`http://127.0.0.1:${i.port}/`, { headers: { accept: "application/json" } });
    versions.add(((await res.body.json()) as { version: string }).version);
  }
  assert.equal(versions.size, 1, `one version served: ${[...versions].join(", ")}`);
  return [...versions][0] as string;
}

describe("a drill interrupted mid-fault leaves the stack as it found it", { timeout: 900_000 }, () => {
  const dir = tempDir();
  const stateDir = path.join(dir, ".stayup");
  let client: StackClient;
  const changes = new Changes();
  const watching = new AbortController();

  before(async () => {
    await upDetached(stateDir, { cwd: dir });
    client = StackClient.require(stateDir);
    // One event stream for the whole suite: every event wakes the waits below.
    void (async () => {
      for await (const _ of client.events(watching.signal)) changes.poke();
    })().catch(() => undefined);
  });
  after(async () => {
    watching.abort();
    await runCli(["down", "--state-dir", stateDir], { timeoutMs: 90_000 });
  });

  /** The stack whole again (instances back to desired, not only faults cleared) before the next drill. */
  const settled = () =>
    waitOn(
      "the stack whole, every instance healthy",
      changes,
      async () => {
        const s = await client.status();
        const healthy = s.instances.filter((i) => i.healthy).length;
        return brokenParts(s).length === 0 && healthy >= s.group.desired && s.group.desired >= 2
          ? s
          : undefined;
      },
      120_000,
    );

  /**
   * Runs `drill` on the shared stack, sends `signal` once `inFault` holds (the fault is in force),
   * and checks: it exits non-zero saying "interrupted" with a partial report (not for SIGKILL,
   * which no process can handle), and the stack is whole again (at once when the drill could clean
   * up itself; for SIGKILL, once the stack noticed its lease lapse).
   */
  async function interruptMidFault(
    drill: string,
    args: string[],
    signal: Signal,
    inFault: (status: StackStatus, stderr: string) => boolean,
  ): Promise<string> {
    await settled();
    // 50 requests/s, not 200: the partial report needs some traffic, the stack's CPU none of the rest.
    const run = startDrill(
      [drill, "--state-dir", stateDir, "--warmup-seconds", "0.5", "--rate", "50", ...args],
      changes.poke,
    );
    try {
      await waitOn(
        `${drill}'s fault in force`,
        changes,
        async () => {
          if (run.child.exitCode !== null) throw new Error(`${drill} ended first: ${run.stderr()}`);
          return inFault(await client.status(), run.stderr()) || undefined;
        },
        120_000,
      );
      run.child.kill(signal);
      const exit = await run.exited;
      const output = `${run.stderr()}\n${run.stdout()}`;
      if (signal === "SIGKILL") {
        assert.equal(exit.signal, "SIGKILL");
        await waitOn(
          "the stack to clear what the killed drill left",
          changes,
          async () => brokenParts(await client.status()).length === 0 || undefined,
          60_000,
        );
      } else {
        assert.notEqual(exit.code, 0, output);
        assert.ok(exit.code !== null, output);
        assert.match(run.stderr(), new RegExp(`drill ${drill} interrupted \\(${signal}\\)`), output);
        // The drill cleared what it left before exiting: nothing to wait for.
        assert.deepEqual(brokenParts(await client.status()), [], output);
        const json = /partial report: \S+ \(JSON: (\S+)\)/.exec(run.stderr())?.[1];
        assert.ok(json && existsSync(json), `a partial report: ${output}`);
        const report = JSON.parse(readFileSync(json, "utf8")) as DrillReport;
        assert.deepEqual((report.interrupted as { reason: string }).reason, signal);
        assert.equal(report.verdict.passed, false);
        assert.ok(report.requests > 0, "the partial report holds the traffic sent until then");
      }
      await everyInstanceAnswers(await client.status());
      return run.stderr();
    } finally {
      run.child.kill("SIGKILL");
    }
  }

  const faultOf =
    (kind: string) =>
    (status: StackStatus): boolean =>
      (status.faults ?? []).some((f) => f.kind === kind);

  it("az-outage, SIGINT: the zone restored, its Redis node with it", async () => {
    await interruptMidFault(
      "az-outage",
      ["--cooldown-seconds", "120"],
      "SIGINT",
      (status) =>
        faultOf("az-outage")(status) && brokenParts(status).some((p) => /^Redis node .* stopped$/.test(p)),
    );
  });

  it("failing-instance, SIGINT and SIGTERM: the instance answers 200 again", async () => {
    const args = ["--fault-seconds", "120"];
    await interruptMidFault("failing-instance", args, "SIGINT", faultOf("instance"));
    await interruptMidFault("failing-instance", args, "SIGTERM", faultOf("instance"));
  });

  it("slow-instance, SIGINT and SIGKILL of the drill: the instance answers at once again", async () => {
    const args = ["--fault-seconds", "120", "--latency-ms", "60000"];
    await interruptMidFault("slow-instance", args, "SIGINT", faultOf("instance"));
    await interruptMidFault("slow-instance", args, "SIGKILL", faultOf("instance"));
  });

  it("slow-redis, SIGINT and SIGHUP: the path to Redis restored", async () => {
    const args = ["--fault-seconds", "120", "--latency-ms", "60000"];
    await interruptMidFault("slow-redis", args, "SIGINT", faultOf("redis"));
    await interruptMidFault("slow-redis", args, "SIGHUP", faultOf("redis"));
  });

  it("region-outage, SIGINT and SIGKILL of the drill: the region back", async () => {
    const args = ["--outage-seconds", "120"];
    await interruptMidFault("region-outage", args, "SIGINT", faultOf("region-outage"));
    await interruptMidFault("region-outage", args, "SIGKILL", faultOf("region-outage"));
  });

  it("redis-failover, SIGINT right after the primary was killed: every node running again", async () => {
    await interruptMidFault("redis-failover", [], "SIGINT", (_s, stderr) =>
      /SIGKILL → Redis primary/.test(stderr),
    );
  });

  it("cpu-spike, SIGINT under load: the load stops, nothing left in force", async () => {
    await interruptMidFault("cpu-spike", [], "SIGINT", (_s, stderr) => /load: \d+ requests\/s/.test(stderr));
  });

  it("kill-instance, SIGTERM after the kill: a replacement, nothing left in force", async () => {
    await interruptMidFault("kill-instance", [], "SIGTERM", (_s, stderr) => /SIGKILL → i-/.test(stderr));
  });

  /** `stayup status --json`, as a user would read it. */
  async function statusJson(): Promise<StackStatus> {
    const json = await runCli(["status", "--state-dir", stateDir, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    return JSON.parse(json.stdout) as StackStatus;
  }

  /** The stack on `version` only: its group set to it, every instance on it and serving it. */
  async function assertOnVersion(version: string, output: string): Promise<void> {
    const status = await statusJson();
    assert.equal(status.version, version, `the version found, in status --json: ${output}`);
    assert.deepEqual(
      status.instances.map((i) => i.version),
      status.instances.map(() => version),
      `every instance on the version found: ${output}`,
    );
    assert.equal(await servedVersion(status), version, "what the instances answer with");
  }

  /** The version every instance runs, once the stack is whole: what an interrupted roll must end on. */
  async function foundVersion(): Promise<string> {
    const found = await settled();
    assert.ok(found.version, "status carries the version");
    assert.ok(
      found.instances.every((i) => i.version === found.version),
      "one version before the drill",
    );
    return found.version;
  }

  /** A new-version instance in service: the roll has replaced something, so a rollback must too. */
  const newVersionServes =
    (found: string) =>
    (status: StackStatus): boolean =>
      status.instances.some((i) => i.healthy && i.version !== undefined && i.version !== found);

  it("rolling-deploy, SIGINT once a new-version instance serves: the roll stopped and rolled back, launch first, the stack on the version found", async () => {
    const found = await foundVersion();
    const stderr = await interruptMidFault("rolling-deploy", [], "SIGINT", newVersionServes(found));
    assert.match(stderr, /stopping the roll and rolling back to the version found/);
    assert.match(
      stderr,
      new RegExp(
        `drill rolling-deploy interrupted \\(SIGINT\\): .*stopped its roll: back on ${found}, every instance on it`,
      ),
    );
    // At once when the drill exits: it waited for the rollback.
    await assertOnVersion(found, stderr);
    const json = /partial report: \S+ \(JSON: (\S+)\)/.exec(stderr)?.[1] as string;
    const report = JSON.parse(readFileSync(json, "utf8")) as DrillReport;
    assert.deepEqual((report.interrupted as { undone?: string[] }).undone, [
      `stopped its roll: back on ${found}, every instance on it`,
    ]);
    // The rollback replaced instances launch first, under the drill's traffic: nobody saw it.
    assert.equal(report.failed, 0, JSON.stringify(report.failures));
    assert.ok(
      report.events.some(
        (e) =>
          e.type === "roll.rolled-back" &&
          /stopped( after it completed)?: the drill was interrupted \(SIGINT\)/.test(e.reason),
      ),
      "the stack's events say why the roll was rolled back",
    );
  });

  it("rolling-deploy, SIGHUP after its roll completed (in its cooldown): the completed roll rolled back, the stack on the version found", async () => {
    const found = await foundVersion();
    const stderr = await interruptMidFault(
      "rolling-deploy",
      ["--cooldown-seconds", "120"],
      "SIGHUP",
      (status, out) => /instances replaced in/.test(out) && status.version !== found,
    );
    assert.match(stderr, new RegExp(`stopped its roll: back on ${found}, every instance on it`));
    await assertOnVersion(found, stderr);
  });

  it("rolling-deploy of a broken version, SIGTERM mid-roll: the roll stopped, the stack on the version found", async () => {
    const found = await foundVersion();
    const stderr = await interruptMidFault("rolling-deploy", ["--broken", "crash"], "SIGTERM", (_s, out) =>
      /rolling to a new version broken on purpose/.test(out),
    );
    assert.match(stderr, new RegExp(`stopped its roll: back on ${found}, every instance on it`));
    await assertOnVersion(found, stderr);
  });

  it("rolling-deploy, its client killed (SIGKILL) mid-roll: the stack notices the roll's requester is gone and rolls back by itself", async () => {
    const found = await foundVersion();
    const stderr = await interruptMidFault("rolling-deploy", [], "SIGKILL", newVersionServes(found));
    await waitOn(
      "the stack back on the version found, every instance on it",
      changes,
      async () => {
        const s = await client.status();
        return (s.version === found && s.instances.every((i) => i.version === found)) || undefined;
      },
      180_000,
    );
    await assertOnVersion(found, stderr);
    const events: TimedStackEvent[] = [];
    const reading = new AbortController();
    const read = (async () => {
      for await (const e of client.events(reading.signal)) events.push(e);
    })().catch(() => undefined);
    // The stream replays the stack's recent events: the rollback's is among them.
    try {
      await waitFor(
        "the rollback's event, saying its requester went away",
        () =>
          events.some((e) => e.type === "roll.rolled-back" && /its requester went away/.test(e.reason)) ||
          undefined,
        10_000,
      );
    } finally {
      reading.abort();
      await read;
    }
  });

  it("`stayup roll`, Ctrl-C once a new-version instance serves: stopped with rollback, exit 130, the stack on the version found", async () => {
    const found = await foundVersion();
    const roll = spawn(
      process.execPath,
      [cliPath, "roll", "--state-dir", stateDir, "--set", "STAYUP_DEPLOY_ID=ctrl-c"],
      {
        cwd: repoRoot,
      },
    );
    let stderr = "";
    let stdout = "";
    roll.stderr.on("data", (d: Buffer) => {
      stderr += d;
      changes.poke();
    });
    roll.stdout.on("data", (d: Buffer) => {
      stdout += d;
    });
    const exited = new Promise<number | null>((resolve) => roll.once("close", (code) => resolve(code)));
    try {
      await waitOn(
        "a new-version instance in service",
        changes,
        async () => newVersionServes(found)(await client.status()) || undefined,
        120_000,
      );
      roll.kill("SIGINT");
      const code = await exited;
      const output = `${stderr}\n${stdout}`;
      assert.equal(code, 130, output);
      assert.match(stderr, /stopping the roll and rolling back/);
      assert.match(
        stderr,
        new RegExp(`stayup roll interrupted \\(SIGINT\\): the roll stopped, the stack back on ${found}`),
      );
      await assertOnVersion(found, output);
    } finally {
      roll.kill("SIGKILL");
    }
  });

  it("`stayup status` shows a fault in force with the command that clears it; `stayup faults clear` clears it", async () => {
    await settled();
    // A fault injected by hand (no drill, no lease): in force until cleared.
    const victim = (await client.status()).instances.find((i) => i.healthy);
    assert.ok(victim);
    await client.fault("instance", { instance: victim.id, kind: "errors", status: "503" });
    const zone = (await client.status()).regions[0]?.availabilityZones.find(
      (z) => z.name !== victim.az,
    )?.name;
    assert.ok(zone);
    await client.fault("az-outage", { az: zone });

    const text = await runCli(["status", "--state-dir", stateDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /FAULTS IN FORCE \(2\)/);
    assert.match(text.stdout, new RegExp(`instance ${victim.id} in ${victim.az}: GET / answers 503`));
    assert.match(text.stdout, new RegExp(`availability zone ${zone} impaired`));
    assert.match(text.stdout, /clear them: stayup faults clear/);
    const json = await runCli(["status", "--state-dir", stateDir, "--json"]);
    const faults = (JSON.parse(json.stdout) as StackStatus).faults ?? [];
    assert.deepEqual(faults.map((f) => f.kind).sort(), ["az-outage", "instance"]);
    assert.ok(faults.every((f) => f.clear === "stayup faults clear"));

    const clear = await runCli(["faults", "clear", "--state-dir", stateDir]);
    assert.equal(clear.code, 0, clear.stderr);
    assert.match(clear.stdout, /cleared: availability zone/);
    assert.match(clear.stdout, /cleared: instance/);
    const afterClear = await client.status();
    assert.deepEqual(brokenParts(afterClear), []);
    assert.doesNotMatch((await runCli(["status", "--state-dir", stateDir])).stdout, /FAULTS IN FORCE/);
    const again = await runCli(["faults", "clear", "--state-dir", stateDir]);
    assert.match(again.stdout, /no fault was in force/);
    await settled();
    await everyInstanceAnswers(await client.status());
  });
});

/** Every process descending from `pid` (from /proc: the temporary stack's Redis, Sentinels, instances). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents) {
      if (parent === p) {
        found.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return found;
}

const commandOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return "?";
  }
};

const portRefuses = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });

/** Every process `pid` started is gone (zombies, exited but not yet reaped, count as gone). */
async function assertAllGone(started: number[], stderr: string): Promise<void> {
  await waitFor(
    "every process it started gone",
    () => started.every((pid) => !isProcessAlive(pid)) || undefined,
    30_000,
  ).catch(() => undefined);
  assert.deepEqual(
    started.filter((pid) => isProcessAlive(pid)).map((pid) => `${pid}: ${commandOf(pid)}`),
    [],
    `every process the temporary stack started is gone: ${stderr}`,
  );
}

/**
 * `stayup drill kill-instance` with no stack running in a fresh state folder: it starts a temporary
 * stack of `config`, then sends traffic after 30 s of warm-up (time for the test to interrupt it).
 */
function startOnTemporaryStack(config = configPath): RunningDrill {
  const stateDir = path.join(tempDir(), ".stayup");
  return startDrill(["kill-instance", "--state-dir", stateDir, "--warmup-seconds", "30"], undefined, config);
}

/** Waits (150 s at most) for what `seen` finds while the drill runs; fails at once if it ends first. */
function whileRunning<T>(run: RunningDrill, what: string, seen: () => T | undefined): Promise<T> {
  return waitFor(
    what,
    () => {
      if (run.child.exitCode !== null) throw new Error(`ended first: ${run.stderr()}`);
      return seen();
    },
    150_000,
  );
}

describe(
  "`stayup drill` with no stack running stops its temporary stack when interrupted",
  { timeout: 600_000 },
  () => {
    // Each temporary stack is a whole stack started (and most of this suite's CPU), so each signal
    // is sent once: SIGHUP here under traffic, SIGTERM while the stack starts, SIGINT twice below.
    // All three reach the same handler (trapInterruptions in src/cli/commands/drill), each with its
    // own exit code, checked in its test.
    it("SIGHUP under traffic: the temporary stack stopped, no process left, the ports freed", async () => {
      const signal = "SIGHUP";
      const run = startOnTemporaryStack();
      try {
        const listener = await whileRunning(
          run,
          "the drill's traffic on the temporary stack",
          () => /sending \d+ requests\/s to http:\/\/127\.0\.0\.1:(\d+)/.exec(run.stderr())?.[1],
        );
        const started = descendants(run.child.pid as number);
        assert.ok(started.length >= 8, `Redis, Sentinels and instances run: ${started.length} processes`);
        run.child.kill(signal);
        const exit = await run.exited;
        assert.equal(exit.code, 129, `128 + SIGHUP's number (1), as a shell reports it: ${run.stderr()}`);
        assert.match(run.stderr(), /stopping the temporary stack/);
        assert.match(run.stderr(), new RegExp(`drill kill-instance interrupted \\(${signal}\\)`));
        // esbuild's service process (the bundle's) ends on its own once its parent's pipe closes.
        await waitFor(
          "every process it started gone",
          () => started.every((pid) => !isAlive(pid)),
          15_000,
        ).catch(() => undefined);
        assert.deepEqual(
          started.filter((pid) => isAlive(pid)).map((pid) => `${pid}: ${commandOf(pid)}`),
          [],
          "every process the temporary stack started is gone",
        );
        assert.ok(await portRefuses(Number(listener)), `the listener's port ${listener} is freed`);
      } finally {
        run.child.kill("SIGKILL");
      }
    });

    it("SIGTERM while the temporary stack is still starting: it is stopped once started, nothing left", async () => {
      const run = startOnTemporaryStack(oneRegionConfig);
      try {
        // Its first Redis node runs: the stack is starting, no traffic yet.
        const redisStarted = await whileRunning(run, "a Redis node of the temporary stack", () => {
          const redis = descendants(run.child.pid as number).filter((pid) =>
            /redis-server/.test(commandOf(pid)),
          );
          return redis.length > 0 ? redis : undefined;
        });
        assert.doesNotMatch(run.stderr(), /sending \d+ requests/, "interrupted before the drill's traffic");
        run.child.kill("SIGTERM");
        // What else it starts meanwhile is found as it goes (the stack finishes starting first).
        const started = new Set(redisStarted);
        const watch = setInterval(() => {
          for (const pid of descendants(run.child.pid as number)) started.add(pid);
        }, 20);
        const exit = await run.exited;
        clearInterval(watch);
        assert.equal(exit.code, 143, run.stderr());
        assert.match(run.stderr(), /drill kill-instance interrupted \(SIGTERM\)/);
        await assertAllGone([...started], run.stderr());
      } finally {
        run.child.kill("SIGKILL");
      }
    });

    it("SIGINT twice: the second kills the temporary stack's processes at once, nothing left", async () => {
      const run = startOnTemporaryStack(oneRegionConfig);
      try {
        await whileRunning(
          run,
          "the drill's traffic on the temporary stack",
          () => /sending \d+ requests\/s/.test(run.stderr()) || undefined,
        );
        const started = descendants(run.child.pid as number);
        // One region: three Redis nodes, its Sentinel(s) and two instances.
        assert.ok(
          started.length >= 5 + SENTINELS_PER_REGION,
          `Redis, Sentinels and instances run: ${started.length} processes`,
        );
        // Both at once: the second lands while the first's orderly stop has barely begun.
        run.child.kill("SIGINT");
        await waitFor(
          "the first seen",
          () => /interrupted \(SIGINT\)/.test(run.stderr()) || undefined,
          30_000,
        );
        run.child.kill("SIGINT");
        const exit = await run.exited;
        assert.equal(exit.code, 130, run.stderr());
        assert.match(
          run.stderr(),
          /SIGINT again: killed the temporary stack's \d+ process\(es\); exiting now/,
        );
        await assertAllGone(started, run.stderr());
      } finally {
        run.child.kill("SIGKILL");
      }
    });
  },
);
