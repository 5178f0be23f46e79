import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, describe, it } from "node:test";
import { request } from "undici";
import { StackClient } from "../src/local/control-plane/client.ts";
import type { StackStateFile } from "../src/local/control-plane/state-file.ts";
import type { TimedStackEvent } from "../src/local/events/bus.ts";
import { findLeftovers } from "../src/local/leftovers.ts";
import type { ProcessFile, RecordedProcess } from "../src/local/processes.ts";
import { findFreePort } from "../src/shared/net.ts";
import { SENTINELS_PER_REGION } from "../src/stack/derived.ts";
import { isProcessAlive, processGroupMembers, processStartOf } from "../src/shared/process-info.ts";
import { cliPath, configPath, repoRoot, runCli, tempDir, upArgs, waitFor } from "./helpers.ts";

/** Running: a zombie (exited, its new parent not having reaped it yet) has stopped. */
const isAlive = isProcessAlive;

/**
 * The repository's description by default: its two regions' Redis groups are what a SIGKILLed
 * runtime leaves. The one-region fixture where nothing of the secondary region is exercised.
 */
const oneRegionConfig = path.join(repoRoot, "test/fixtures/one-region.config.ts");
/** Redis processes of the default stack: per region (two), three nodes and its Sentinel(s). */
const redisPerStack = 2 * (3 + SENTINELS_PER_REGION);
const upDetached = (stateDir: string, redisPort: number | string = 0, config = configPath) =>
  runCli([...upArgs(stateDir, { redisPort, config }), "--detach"], { timeoutMs: 150_000 });
const state = (stateDir: string) =>
  JSON.parse(readFileSync(path.join(stateDir, "stack.json"), "utf8")) as StackStateFile;
const recorded = (stateDir: string) =>
  (
    JSON.parse(readFileSync(path.join(stateDir, "processes.json"), "utf8")) as {
      processes: RecordedProcess[];
    }
  ).processes;
const count = async (listener: string) => {
  const res = await request(`${listener}/`, { headers: { accept: "application/json" } });
  assert.equal(res.statusCode, 200);
  return ((await res.body.json()) as { count: number }).count;
};

describe("nothing is left behind, nothing runs twice", { timeout: 600_000 }, () => {
  const dirs: string[] = [];
  const stateDirOf = () => {
    const dir = path.join(tempDir(), ".stayup");
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    for (const dir of dirs) await runCli(["down", "--state-dir", dir]);
  });
  /**
   * A test's stack stopped once its test is done, not left to `after` (for what a failed test left):
   * an idle stack's health checks and Sentinels cost CPU the other tests and suites could use.
   */
  const stopped = async (stateDir: string) => {
    await runCli(["down", "--state-dir", stateDir], { timeoutMs: 90_000 });
    dirs.splice(dirs.indexOf(stateDir), 1);
  };

  // One stack for two checks (a stack start is most of each): the `up` after the SIGKILL runs in the
  // foreground, as from a terminal, and that terminal's closing (SIGHUP) then stops it.
  it("after SIGKILL of the runtime, `stayup up` on the same Redis port succeeds and the count continues; SIGHUP (the terminal closed) then stops it cleanly, Redis included", async () => {
    const stateDir = stateDirOf();
    const redisPort = await findFreePort();
    const first = await upDetached(stateDir, redisPort);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const before = state(stateDir);
    let highest = 0;
    for (let i = 0; i < 5; i++) highest = await count(before.listener);
    const redisLeft = recorded(stateDir).filter((p) => p.kind === "redis-node" || p.kind === "sentinel");
    // Each region its own group (issue 24): three nodes and its regional Sentinel in each of the two.
    assert.equal(redisLeft.length, redisPerStack, "three nodes and the Sentinel per region recorded");

    process.kill(before.pid, "SIGKILL");
    await waitFor("the runtime to be gone", () => !isAlive(before.pid));
    assert.ok(
      redisLeft.every((p) => isAlive(p.pid)),
      "Redis outlives a SIGKILLed runtime",
    );

    // In the foreground: what `up --detach` writes to stack.log comes on its stdout.
    const child = spawn(process.execPath, [cliPath, ...upArgs(stateDir, { redisPort })], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d));
    child.stderr.on("data", (d: Buffer) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      await waitFor(
        "the stack to be up again",
        () => {
          if (child.exitCode !== null) throw new Error(`up ended first: ${output}`);
          try {
            return state(stateDir).pid === child.pid ? true : undefined;
          } catch {
            return undefined;
          }
        },
        150_000,
      );
      assert.ok(
        redisLeft.every((p) => !isAlive(p.pid)),
        "the leftovers were stopped",
      );
      assert.match(output, new RegExp(`stopped ${redisPerStack} process\\(es\\) left by an earlier run`));
      assert.ok((await count(state(stateDir).listener)) > highest, "the count continues");

      const started = recorded(stateDir);
      assert.ok(started.length >= 6);
      child.kill("SIGHUP");
      assert.equal(await exited, 0, output);
      assert.ok(
        started.every((p) => !isAlive(p.pid)),
        "every process it started is gone",
      );
    } finally {
      child.kill("SIGKILL");
    }
    dirs.splice(dirs.indexOf(stateDir), 1);
  });

  // The `up` after `down` is two at once: the check that two concurrent `up`s make one stack needs a
  // stack start of its own otherwise.
  it("after SIGKILL of the runtime, `stayup down` stops what it left and `up` then starts fresh; two concurrent `up`: one stack and one clear error", async () => {
    const stateDir = stateDirOf();
    const first = await upDetached(stateDir);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const before = state(stateDir);
    let highest = 0;
    for (let i = 0; i < 3; i++) highest = await count(before.listener);
    const started = recorded(stateDir);
    assert.equal(
      started.filter((p) => p.kind === "redis-node" || p.kind === "sentinel").length,
      redisPerStack,
    );

    process.kill(before.pid, "SIGKILL");
    await waitFor("the runtime to be gone", () => !isAlive(before.pid));
    const left = started.filter((p) => isAlive(p.pid));
    assert.ok(left.length >= redisPerStack, "Redis nodes and Sentinels outlive a SIGKILLed runtime");

    const down = await runCli(["down", "--state-dir", stateDir], { timeoutMs: 90_000 });
    assert.equal(down.code, 0, down.stderr + down.stdout);
    // Redis nodes and Sentinels wait to be stopped; an instance may end by itself once its parent
    // is gone (its IPC channel closes), before `down` looks, so the count is a range.
    const stoppedCount = Number(/stopped (\d+) process\(es\) it left/.exec(down.stdout)?.[1]);
    assert.ok(
      stoppedCount >= redisPerStack && stoppedCount <= left.length,
      `stopped ${stoppedCount} of ${left.length}: ${down.stdout}`,
    );
    for (const p of left.filter((p) => p.kind === "redis-node" || p.kind === "sentinel")) {
      assert.match(
        down.stdout,
        new RegExp(`${p.kind} ${p.name} \\(pid ${p.pid}\\)`),
        "down names what it stopped",
      );
    }
    assert.deepEqual(
      left.filter((p) => isAlive(p.pid)).map((p) => `${p.kind} ${p.name} (pid ${p.pid})`),
      [],
      "every process the dead runtime left is stopped",
    );

    // Nothing was left for the next `up` to stop, and the count continues from the data kept. Two
    // `up` at once: one stack and one clear error.
    const [a, b] = await Promise.all([upDetached(stateDir), upDetached(stateDir)]);
    const results = [a, b].sort((x, y) => (x.code ?? 9) - (y.code ?? 9));
    assert.equal(results[0]?.code, 0, results[0]?.stderr);
    assert.equal(results[1]?.code, 1, results[1]?.stdout);
    assert.match(results[1]?.stderr ?? "", /another `stayup up` is already running from/);
    const running = state(stateDir);
    assert.ok(isAlive(running.pid));
    assert.doesNotMatch(readFileSync(path.join(stateDir, "stack.log"), "utf8"), /left by an earlier run/);
    assert.ok((await count(running.listener)) > highest, "the count continues");
    await stopped(stateDir);
  });

  it("single instance: after SIGKILL of the runtime, its redis-server is stopped cleanly and the count continues", async () => {
    const stateDir = stateDirOf();
    const args = [...upArgs(stateDir), "--topology", "single-instance", "--detach"];
    const first = await runCli(args, { timeoutMs: 150_000 });
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const before = state(stateDir);
    let highest = 0;
    for (let i = 0; i < 5; i++) highest = await count(before.listener);
    const redisLeft = recorded(stateDir).filter((p) => p.kind === "redis");
    assert.equal(redisLeft.length, 1, "the instance's redis-server is recorded");

    process.kill(before.pid, "SIGKILL");
    await waitFor("the runtime to be gone", () => !isAlive(before.pid));
    assert.ok(
      redisLeft.every((p) => isAlive(p.pid)),
      "Redis outlives a SIGKILLed runtime",
    );

    const second = await runCli(args, { timeoutMs: 150_000 });
    assert.equal(second.code, 0, second.stderr + second.stdout);
    assert.ok(
      redisLeft.every((p) => !isAlive(p.pid)),
      "the leftover redis-server was stopped",
    );
    assert.ok((await count(state(stateDir).listener)) > highest, "the count continues from the volume");
    await stopped(stateDir);
  });

  it("an unopenable log directory, or a Redis node that cannot be restarted, is an event, not a dead runtime", async () => {
    const stateDir = stateDirOf();
    // A file where the log directory should be: neither mkdir nor open can succeed (even as root).
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(path.join(stateDir, "logs"), "not a directory\n");
    const up = await upDetached(stateDir, 0, oneRegionConfig);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    const client = StackClient.require(stateDir);
    const abort = new AbortController();
    const errors: TimedStackEvent[] = [];
    const reading = (async () => {
      for await (const e of client.events(abort.signal)) {
        if (e.type === "controller.error") errors.push(e);
        if (e.type === "stack.ready") abort.abort();
      }
    })();
    await reading;
    assert.ok(errors.length > 0, "the failure is an event");
    assert.match(JSON.stringify(errors[0]), /cannot open the log/);
    assert.ok(isAlive(client.state.pid), "the runtime is still running");
    const before = await count(client.state.listener);

    // A controller other than the instance group fails: a Redis replica dies and its port is taken
    // by another process, so the redis controller's restart cannot succeed until it is freed.
    const replica = (await client.status()).redis.nodes?.find((n) => n.role === "replica" && n.pid);
    assert.ok(replica?.pid, "a replica to kill");
    const redisErrors: TimedStackEvent[] = [];
    let restarted = false;
    const watching = new AbortController();
    const watched = (async () => {
      for await (const e of client.events(watching.signal)) {
        if (e.type === "controller.error" && e.controller === "redis") redisErrors.push(e);
        if (e.type === "redis.started" && e.az === replica.az && redisErrors.length > 0) restarted = true;
      }
    })();
    const squatter = net.createServer((socket) => socket.destroy());
    process.kill(replica.pid, "SIGKILL");
    await waitFor(
      "the replica's port taken",
      () =>
        new Promise<boolean | undefined>((resolve) => {
          squatter.once("error", () => resolve(undefined));
          squatter.listen(replica.port, "127.0.0.1", () => resolve(true));
        }),
      30_000,
    );
    try {
      await waitFor("the failed restart as an event", () => redisErrors[0], 60_000);
      assert.ok(isAlive(client.state.pid), "the runtime survives the redis controller's failure");
      assert.ok((await count(client.state.listener)) > before, "and keeps serving counts");
    } finally {
      await new Promise<void>((r) => squatter.close(() => r()));
    }
    await waitFor("the replica restarted once its port is free", () => restarted || undefined, 60_000);
    watching.abort();
    await watched;
    assert.match(JSON.stringify(redisErrors[0]), /restart of the node in .* is retried/);
    assert.ok(
      redisErrors.length < 10,
      `a persistent failure is rate-limited (${redisErrors.length} events, not one per attempt)`,
    );
    await count(client.state.listener);
    await stopped(stateDir);
  });
});

/** A service in the user's own words: `node server.cjs; echo …` runs under `/bin/sh -c` (a shell, then node). */
function shellServiceConfig(): string {
  const dir = tempDir();
  writeFileSync(
    path.join(dir, "server.cjs"),
    `require("node:http").createServer((req, res) => res.end("ok")).listen(Number(process.env.PORT), process.env.HOST);\n`,
  );
  const description = readFileSync(path.join(repoRoot, "examples/python-stdlib/stayup.config.ts"), "utf8")
    .replace(/name: "python-stdlib"/, 'name: "shell-service"')
    .replace(/command: "python3 server.py"/, 'command: "node server.cjs; echo the service ended"');
  assert.match(description, /node server\.cjs; echo/);
  writeFileSync(path.join(dir, "stayup.config.ts"), description);
  return path.join(dir, "stayup.config.ts");
}

/** The group's live members (zombies left out). */
const membersOf = (group: number) => processGroupMembers(group).sort((a, b) => a - b);

describe(
  "`stayup down` after SIGKILL of the runtime: all it started, nothing else",
  { timeout: 600_000 },
  () => {
    const dirs: string[] = [];
    const strangers: ChildProcess[] = [];
    after(async () => {
      for (const dir of dirs) await runCli(["down", "--state-dir", dir]);
      for (const child of strangers) child.kill("SIGKILL");
    });

    it("a service started by `sh -c` goes with its shell, and with the shell gone too", async () => {
      const stateDir = path.join(tempDir(), ".stayup");
      dirs.push(stateDir);
      const up = await runCli([...upArgs(stateDir, { config: shellServiceConfig() }), "--detach"], {
        timeoutMs: 150_000,
      });
      assert.equal(up.code, 0, up.stderr + up.stdout);
      const runtime = state(stateDir).pid;
      const instances = await waitFor("two instances recorded", () => {
        const found = recorded(stateDir).filter((p) => p.kind === "instance");
        return found.length >= 2 ? found : undefined;
      });
      // Each instance leads its own group: the shell and, under it, node.
      for (const i of instances) {
        assert.equal(i.group, true, `${i.name} is recorded as a group`);
        assert.ok(i.processStart, "with its start");
        await waitFor(`${i.name}'s shell and its node`, () =>
          membersOf(i.pid).length >= 2 ? true : undefined,
        );
      }
      const groups = new Map(instances.map((i) => [i.pid, membersOf(i.pid)]));
      // The user's own service has no /load: it is not handed the stack's load secret either.
      for (const pid of [...groups.values()].flat()) {
        const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
        assert.ok(
          environ.includes(
            `STAYUP_INSTANCE_ID=${instances.find((i) => groups.get(i.pid)?.includes(pid))?.name}`,
          ),
        );
        assert.ok(
          !environ.some((v) => v.startsWith("STAYUP_LOAD_SECRET=")),
          `no load secret in ${pid}'s environment`,
        );
      }
      process.kill(runtime, "SIGKILL");
      await waitFor("the runtime to be gone", () => !isProcessAlive(runtime) || undefined);
      // One shell is killed as well: its node, alone in the group, must be found all the same.
      const [first] = instances;
      assert.ok(first);
      process.kill(first.pid, "SIGKILL");
      await waitFor("that shell to be gone", () => !isProcessAlive(first.pid) || undefined);
      assert.ok(
        [...groups.values()].flat().some((pid) => pid !== first.pid && isProcessAlive(pid)),
        "the services outlive their runtime",
      );

      const down = await runCli(["down", "--state-dir", stateDir], { timeoutMs: 90_000 });
      assert.equal(down.code, 0, down.stderr + down.stdout);
      assert.match(
        down.stdout,
        new RegExp(`instance ${first.name} \\(pid ${first.pid} gone, its group's \\d+\\)`),
      );
      for (const [group, members] of groups) {
        assert.deepEqual(membersOf(group), [], `group ${group} is empty`);
        assert.deepEqual(
          members.filter((pid) => isProcessAlive(pid)),
          [],
          `every process of group ${group} is stopped`,
        );
      }
      assert.ok(
        recorded(stateDir).every((p) => !isProcessAlive(p.pid)),
        "every recorded process is stopped",
      );
    });

    it("never stops a process the record names by pid alone: a pid reused since, or another redis-server", async () => {
      const stateDir = path.join(tempDir(), ".stayup");
      mkdirSync(stateDir, { recursive: true });
      // Another redis-server (as the system's on 6379 would be) and another node process, each
      // named in a killed run's record under its own pid but with another start.
      const port = await findFreePort();
      const redis = spawn("redis-server", ["--port", String(port), "--save", "", "--appendonly", "no"], {
        stdio: "ignore",
      });
      const node = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
      strangers.push(redis, node);
      await waitFor("the strangers to run", () =>
        processStartOf(redis.pid!) && processStartOf(node.pid!) ? true : undefined,
      );
      const record: ProcessFile = {
        runtimePid: 999_999_999,
        processes: [
          {
            pid: redis.pid!,
            kind: "redis-node",
            name: "redis-a",
            port,
            startedAt: "",
            processStart: "ticks:1",
          },
          {
            pid: node.pid!,
            kind: "instance",
            name: "i-0",
            startedAt: "",
            processStart: "ticks:1",
            group: true,
          },
          // An older stayup's record (no start): the command line must match its kind.
          { pid: node.pid!, kind: "sentinel", name: "sentinel-1", startedAt: "" },
        ],
      };
      writeFileSync(path.join(stateDir, "processes.json"), JSON.stringify(record));
      assert.deepEqual(findLeftovers(stateDir), []);
      const down = await runCli(["down", "--state-dir", stateDir], { timeoutMs: 60_000 });
      assert.equal(down.code, 0, down.stderr + down.stdout);
      assert.match(down.stdout, /nothing to stop/);
      assert.ok(isProcessAlive(redis.pid!), "the other redis-server runs on");
      assert.ok(isProcessAlive(node.pid!), "the other node process runs on");

      // The same processes recorded with their true start are ours: found (and not stopped here).
      record.processes = [
        {
          pid: redis.pid!,
          kind: "redis-node",
          name: "redis-a",
          port,
          startedAt: "",
          processStart: processStartOf(redis.pid!)!,
        },
      ];
      writeFileSync(path.join(stateDir, "processes.json"), JSON.stringify(record));
      assert.deepEqual(
        findLeftovers(stateDir).map((p) => p.pid),
        [redis.pid],
      );
    });
  },
);
