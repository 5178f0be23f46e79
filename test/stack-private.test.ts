/**
 * Issue 26: another user on the same machine gets nothing from a running stack, and the stack's
 * owner can roll only instance settings. One real stack (`stayup up --detach`), started with a
 * canary AWS_* variable in the CLI's environment, in a state folder that existed with loose modes
 * under a world-traversable parent (only the state folder's own 0700 protects it).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import type { StackStateFile } from "../src/local/control-plane/state-file.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { loadSecretHeader } from "../src/web-service/load-secret.ts";
import { repoRoot, runCli, tempDir, upDetached } from "./helpers.ts";

const canary = `canary-${process.pid}-${Date.now()}`;
const isRoot = process.getuid?.() === 0;

/** Every file and folder under `dir` (symbolic links not followed). */
function walk(dir: string): { files: string[]; dirs: string[] } {
  const out = { files: [] as string[], dirs: [dir] };
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    const stat = lstatSync(full);
    if (stat.isDirectory()) {
      const sub = walk(full);
      out.files.push(...sub.files);
      out.dirs.push(...sub.dirs);
    } else if (!stat.isSymbolicLink()) out.files.push(full);
  }
  return out;
}

/** The environment a process started with, from /proc (readable by its owner: we are). */
const environOf = (pid: number): Record<string, string> =>
  Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );

function runAs(
  user: string,
  args: string[],
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("runuser", ["-u", user, "--", process.execPath, ...args], { cwd });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("a running stack is private to its owner (issue 26)", { timeout: 600_000 }, () => {
  const root = tempDir("stayup-private-");
  const stateDir = path.join(root, ".stayup");
  let state: StackStateFile;
  let status: () => Promise<StackStatus>;
  const control = (
    pathName: string,
    init: { method?: string; body?: string; headers?: Record<string, string> } = {},
  ) =>
    request(`${state.controlUrl}${pathName}`, {
      method: (init.method ?? "GET") as "GET" | "POST",
      body: init.body,
      headers: {
        authorization: `Bearer ${state.token}`,
        "content-type": "application/json",
        ...init.headers,
      },
    });

  before(async () => {
    // The parent is world-traversable, and the state folder existed, loose, with a loose file in it.
    chmodSync(root, 0o755);
    mkdirSync(path.join(stateDir, "reports"), { recursive: true, mode: 0o755 });
    chmodSync(stateDir, 0o755);
    writeFileSync(path.join(stateDir, "reports", "earlier.json"), "{}\n", { mode: 0o644 });
    await upDetached(stateDir, {
      env: { ...process.env, AWS_ACCESS_KEY_ID: "AKIACANARY", AWS_SECRET_ACCESS_KEY: canary },
    });
    state = JSON.parse(readFileSync(path.join(stateDir, "stack.json"), "utf8")) as StackStateFile;
    status = async () => (await (await control("/status")).body.json()) as StackStatus;
  });
  after(async () => {
    await runCli(["down", "--state-dir", stateDir], { timeoutMs: 60_000 });
  });

  it("every folder under the state folder is 0700 and every file 0600, Redis's and Sentinel's included", () => {
    const { files, dirs } = walk(stateDir);
    const names = files.map((f) => path.relative(stateDir, f));
    // What matters is there: the secrets, what Redis and Sentinel wrote or rewrote, the logs.
    for (const expected of [
      /^stack\.json$/,
      /^stack\.log$/,
      /^redis\/password$/,
      /sentinel-1\/sentinel\.conf$/,
      /redis-a\/auth\.conf$/,
      /appendonlydir\/.+\.aof$/,
      /\.rdb$/,
      /^logs\/.+\.log$/,
      /^build\/web-service\.mjs$/,
      /^reports\/earlier\.json$/,
    ]) {
      assert.ok(
        names.some((n) => expected.test(n)),
        `no file matching ${expected} in ${names.join(", ")}`,
      );
    }
    const loose = [
      ...dirs.filter((d) => (lstatSync(d).mode & 0o777) !== 0o700),
      ...files.filter((f) => (lstatSync(f).mode & 0o077) !== 0),
    ].map((p) => `${path.relative(stateDir, p) || "."} ${(lstatSync(p).mode & 0o777).toString(8)}`);
    assert.deepEqual(loose, [], "folders 0700, files readable by their owner only");
  });

  it("no secret in a log: stack.log names the dashboard without its token", () => {
    const log = readFileSync(path.join(stateDir, "stack.log"), "utf8");
    assert.match(log, /see: +http:\/\/127\.0\.0\.1:\d+\/dashboard /);
    assert.match(log, /stayup status --state-dir/);
    const password = readFileSync(path.join(stateDir, "redis", "password"), "utf8").trim();
    const { files } = walk(stateDir);
    for (const file of files.filter((f) => f.endsWith(".log"))) {
      const text = readFileSync(file, "utf8");
      assert.ok(!text.includes(state.token), `the control token is in ${file}`);
      assert.ok(!text.includes(password), `the Redis password is in ${file}`);
      assert.ok(!text.includes(state.loadSecret ?? "-"), `the load secret is in ${file}`);
    }
  });

  it("instances get an environment from a list, not the CLI's (no AWS_* canary)", async () => {
    const s = await status();
    // Instances only: redis-server rewrites the memory /proc/<pid>/environ shows (its process title).
    const pids = s.instances.map((i) => i.pid);
    assert.ok(pids.length >= 2, JSON.stringify(pids));
    for (const pid of pids) {
      const env = environOf(pid);
      const leaked = Object.entries(env).filter(([k, v]) => k.startsWith("AWS_") || v.includes(canary));
      assert.deepEqual(leaked, [], `pid ${pid} inherited the CLI's environment`);
      assert.ok(env.PATH, `pid ${pid} has PATH`);
    }
    const instanceEnv = environOf(s.instances[0]?.pid ?? 0);
    assert.equal(instanceEnv.STAYUP_INSTANCE_ID, s.instances[0]?.id);
    assert.ok(instanceEnv.STAYUP_REDIS_SENTINELS, "stayup's own variables are there");
    // The runtime itself is the CLI: it keeps its environment.
    assert.equal(environOf(state.pid).AWS_SECRET_ACCESS_KEY, canary);
  });

  it("/load burns CPU only for the holder of the stack's load secret", async () => {
    const s = await status();
    const targets = [state.listener, ...s.instances.map((i) => `http://127.0.0.1:${i.port}`)];
    for (const base of targets) {
      const refused = await request(`${base}/load?cpuMs=50`);
      assert.equal(refused.statusCode, 404, `${base}/load without the secret`);
      await refused.body.dump();
    }
    assert.ok(state.loadSecret, "the state file holds the load secret the drills send");
    const allowed = await request(`${state.listener}/load?cpuMs=1`, {
      headers: { [loadSecretHeader]: state.loadSecret },
    });
    assert.equal(allowed.statusCode, 200);
    assert.match(await allowed.body.text(), /"spins"/);
  });

  it("POST /roll refuses what changes how a process loads code, naming it and why; and bodies over 64 KiB", async () => {
    for (const [name, value] of [
      ["NODE_OPTIONS", "--require ./planted.cjs"],
      ["LD_PRELOAD", "/tmp/planted.so"],
      ["NODE_PATH", "/tmp"],
      ["PYTHONPATH", "/tmp"],
      ["STAYUP_REDIS_SENTINELS", "127.0.0.1:1"],
    ] as const) {
      const res = await control("/roll", {
        method: "POST",
        body: JSON.stringify({ settings: { [name]: value } }),
      });
      const body = (await res.body.json()) as { error?: string };
      assert.equal(res.statusCode, 400, `${name}: ${JSON.stringify(body)}`);
      assert.match(body.error ?? "", new RegExp(`${name} cannot be an instance setting: .*(load|sets it)`));
    }
    const big = await control("/roll", {
      method: "POST",
      body: JSON.stringify({ settings: { LOG_LEVEL: "x".repeat(70 * 1024) } }),
    });
    assert.equal(big.statusCode, 413);
    await big.body.dump();
  });

  it("stayup roll --set refuses them before sending; a real instance setting rolls out", async () => {
    // Against a folder with no stack: refused for the setting, not for the missing stack.
    const refused = await runCli(["roll", "--state-dir", tempDir(), "--set", "NODE_OPTIONS=--require=x"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /NODE_OPTIONS cannot be an instance setting/);
    const refusedLd = await runCli(["roll", "--state-dir", stateDir, "--set", "LD_PRELOAD=/tmp/x.so"]);
    assert.equal(refusedLd.code, 1);
    assert.match(refusedLd.stderr, /LD_PRELOAD cannot be an instance setting/);

    const rolled = await runCli(["roll", "--state-dir", stateDir, "--set", "LOG_LEVEL=debug", "--json"], {
      timeoutMs: 300_000,
    });
    assert.equal(rolled.code, 0, rolled.stderr);
    const result = JSON.parse(rolled.stdout) as { rolledBack: boolean; instancesReplaced: string[] };
    assert.equal(result.rolledBack, false);
    assert.ok(result.instancesReplaced.length > 0);
    const s = await status();
    const serving = s.instances.filter((i) => i.state === "in-service" || i.healthy);
    assert.ok(serving.length > 0);
    for (const i of serving) {
      const env = environOf(i.pid);
      assert.equal(env.LOG_LEVEL, "debug", `${i.id} runs the new setting`);
      assert.ok(!Object.keys(env).some((k) => k.startsWith("AWS_")), `${i.id} has no AWS_*`);
    }
  });

  it(
    "another user (nobody) reads no file, uses no control plane, authenticates to no Redis or Sentinel",
    {
      skip: isRoot ? false : "runuser needs root: this test runs as another user only when the suite is root",
    },
    async () => {
      const s = await status();
      const { files, dirs } = walk(stateDir);
      // The probe lives beside the state folder, readable by all (the parent is traversable).
      const probe = path.join(root, "probe.mjs");
      copyFileSync(path.join(repoRoot, "test/fixtures/other-user-probe.mjs"), probe);
      chmodSync(probe, 0o644);
      const redisPorts = [
        ...(s.redis.nodes ?? []).map((n) => n.port),
        ...[...s.redis.url.matchAll(/:(\d+)/g)].map((m) => Number(m[1])),
      ];
      assert.ok(redisPorts.length >= 6, `nodes and Sentinels: ${redisPorts.join(", ")}`);
      const pids = [
        state.pid,
        ...s.instances.map((i) => i.pid),
        ...(s.redis.nodes ?? []).map((n) => n.pid ?? 0),
      ];
      const run = await runAs(
        "nobody",
        [probe, JSON.stringify({ stateDir, files, dirs, controlUrl: state.controlUrl, redisPorts, pids })],
        root,
      );
      assert.equal(run.code, 0, run.stderr);
      const result = JSON.parse(run.stdout) as {
        files: Record<string, string>;
        dirs: Record<string, string>;
        create: string;
        commandLines: Record<string, string>;
        control: (number | string)[];
        redis: Record<string, string[]>;
        harvested: number;
      };
      assert.deepEqual(
        Object.entries(result.files).filter(([, r]) => r !== "EACCES"),
        [],
        "every file: EACCES",
      );
      assert.equal(Object.keys(result.files).length, files.length);
      assert.deepEqual(
        Object.entries(result.dirs).filter(([, r]) => r !== "EACCES"),
        [],
        "every folder: EACCES",
      );
      assert.equal(result.create, "EACCES", "nothing can be planted in the state folder");
      assert.equal(result.harvested, 0, "no secret found");
      const password = readFileSync(path.join(stateDir, "redis", "password"), "utf8").trim();
      for (const [pid, line] of Object.entries(result.commandLines)) {
        assert.ok(
          !line.includes(password) && !line.includes(state.token),
          `pid ${pid} shows a secret: ${line}`,
        );
        assert.ok(!line.includes("ENVIRON-READABLE"), `pid ${pid}'s environment is readable`);
      }
      assert.ok(result.control.length > 0);
      for (const code of result.control)
        assert.ok(code === 401 || code === 403, `control plane answered ${code}`);
      for (const [port, replies] of Object.entries(result.redis)) {
        assert.ok(replies.length >= 4, `port ${port}: ${replies.join(" | ")}`);
        assert.match(replies[0] ?? "", /^-NOAUTH/, `PING without AUTH on ${port}`);
        assert.match(replies[1] ?? "", /^-NOAUTH/, `INFO without AUTH on ${port}`);
        for (const reply of replies.slice(2))
          assert.match(reply, /^-(WRONGPASS|ERR)/, `AUTH on ${port}: ${reply}`);
      }
    },
  );
});
