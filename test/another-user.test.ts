/**
 * Issue 26: another user on the same machine (`nobody`, through runuser) gets nothing from a
 * running stack, and the stack's owner can roll only instance settings. One real stack (`stayup up
 * --detach`), started with a canary AWS_* variable in the CLI's environment, in a state folder that
 * existed with loose modes under a world-traversable parent in the temporary folder (so what stops
 * the other user is the state folder's own modes, not a parent's; the repository may be under a
 * folder the other user cannot enter at all). Before anything is checked, Sentinel fails the
 * primary over and every Sentinel and node rewrites its file (the rewritten sentinel.conf holds the
 * password in clear): what is checked is what Redis and Sentinel left, not what stayup wrote.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import type { StackStateFile } from "../src/local/control-plane/state-file.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { loadSecretHeader } from "../src/web-service/load-secret.ts";
import { sentinelMasterName } from "../src/local/redis/replication.ts";
import { sleep } from "../src/shared/net.ts";
import { redisCall, repoRoot, runCli, tempDir, upDetached } from "./helpers.ts";

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

/** Polls `check` until it holds; the deadline is generous (a loaded machine), the poll cheap. */
async function until(what: string, check: () => Promise<boolean>, deadlineMs = 120_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what}: not within ${deadlineMs / 1000} s`);
}

/** Every Redis node and Sentinel of the stack (both regions'), as host and port. */
function redisEndpoints(s: StackStatus): { sentinels: number[]; nodes: number[] } {
  const urls = [s.redis.url, s.redis.secondary?.url ?? ""];
  const sentinels = urls.flatMap((u) => [...u.matchAll(/:(\d+)/g)].map((m) => Number(m[1])));
  const nodes = [...(s.redis.nodes ?? []), ...(s.redis.secondary?.nodes ?? [])].map((n) => n.port);
  return { sentinels, nodes };
}

describe("a running stack is private to its owner (issue 26)", { timeout: 600_000 }, () => {
  const root = tempDir("stayup-private-");
  const stateDir = path.join(root, ".stayup");
  let state: StackStateFile;
  let status: () => Promise<StackStatus>;
  let password: string;
  let oldPrimaryPort: number;
  let newPrimaryPort: number;
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
    password = readFileSync(path.join(stateDir, "redis", "password"), "utf8").trim();

    // A Sentinel failover: Sentinels rewrite sentinel.conf (switch-master), the promoted node and
    // the replicas get REPLICAOF + CONFIG REWRITE (their auth.conf rewritten by redis-server).
    const s = await status();
    const primarySentinels = [...s.redis.url.matchAll(/:(\d+)/g)].map((m) => Number(m[1]));
    const [first] = primarySentinels as [number];
    const masterPort = async (port: number) =>
      Number(
        (
          (await redisCall(
            port,
            password,
            "SENTINEL",
            "get-master-addr-by-name",
            sentinelMasterName,
          )) as string[]
        )[1],
      );
    oldPrimaryPort = await masterPort(first);
    // NOGOODSLAVE until Sentinel knows an in-sync replica: asked again.
    await until("SENTINEL FAILOVER accepted", async () => {
      await redisCall(first, password, "SENTINEL", "FAILOVER", sentinelMasterName);
      return true;
    });
    const confs = walk(stateDir).files.filter((f) => f.endsWith("sentinel.conf"));
    const primaryConfs = confs.filter((f) =>
      primarySentinels.some((p) => new RegExp(`^port ${p}$`, "m").test(readFileSync(f, "utf8"))),
    );
    assert.equal(primaryConfs.length, primarySentinels.length, confs.join(", "));
    await until("every Sentinel names the new primary, in its rewritten sentinel.conf", async () => {
      newPrimaryPort = await masterPort(first);
      if (newPrimaryPort === oldPrimaryPort) return false;
      for (const port of primarySentinels) if ((await masterPort(port)) !== newPrimaryPort) return false;
      return primaryConfs.every((f) =>
        new RegExp(`^sentinel monitor ${sentinelMasterName} \\S+ ${newPrimaryPort} `, "m").test(
          readFileSync(f, "utf8"),
        ),
      );
    });
    // And once more on purpose, every Sentinel and every node (both regions'): the files as their
    // own rewrite leaves them.
    const { sentinels, nodes } = redisEndpoints(await status());
    for (const port of sentinels)
      assert.equal(await redisCall(port, password, "SENTINEL", "FLUSHCONFIG"), "OK");
    for (const port of nodes) assert.equal(await redisCall(port, password, "CONFIG", "REWRITE"), "OK");
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
    // Among them, what Redis and Sentinel rewrote themselves (after the failover), secrets in clear.
    const rewrittenBy = (name: string) =>
      files.filter(
        (f) => path.basename(f) === name && /^# Generated by CONFIG REWRITE/m.test(readFileSync(f, "utf8")),
      );
    const sentinelConfs = files.filter((f) => path.basename(f) === "sentinel.conf");
    // One per region (both regions' Sentinels rewrote theirs).
    assert.ok(sentinelConfs.length >= 2);
    assert.deepEqual(
      rewrittenBy("sentinel.conf"),
      sentinelConfs,
      "every sentinel.conf is Sentinel's rewrite",
    );
    assert.ok(
      sentinelConfs.some((f) => readFileSync(f, "utf8").includes(password)),
      "a rewritten sentinel.conf holds the password in clear: only its mode protects it",
    );
    assert.ok(
      sentinelConfs.some((f) => readFileSync(f, "utf8").includes(` ${newPrimaryPort} `)),
      `the rewrite names the new primary (${oldPrimaryPort} → ${newPrimaryPort})`,
    );
    assert.equal(
      rewrittenBy("auth.conf").length,
      files.filter((f) => path.basename(f) === "auth.conf").length,
      "every node's auth.conf is redis-server's rewrite",
    );
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
    assert.match(refused.stderr, /fix: .*webService\.start's command in stayup\.config\.ts/);
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

  const skipUnlessRoot = isRoot
    ? false
    : "runuser needs root: the tests that act as another user run only when the suite runs as root";

  it(
    "another user (nobody) reads no file, uses no control plane, authenticates to no Redis or Sentinel",
    { skip: skipUnlessRoot },
    async () => {
      const s = await status();
      const { files, dirs } = walk(stateDir);
      // The probe lives beside the state folder, readable by all (the parent is traversable).
      const probe = path.join(root, "probe.mjs");
      copyFileSync(path.join(repoRoot, "test/fixtures/other-user-probe.mjs"), probe);
      chmodSync(probe, 0o644);
      const { sentinels, nodes } = redisEndpoints(s);
      const redisPorts = [...nodes, ...sentinels];
      assert.ok(redisPorts.length >= 6, `nodes and Sentinels: ${redisPorts.join(", ")}`);
      const pids = [
        state.pid,
        ...s.instances.map((i) => i.pid),
        ...[...(s.redis.nodes ?? []), ...(s.redis.secondary?.nodes ?? [])].map((n) => n.pid ?? 0),
      ];
      const probeAs = async (input: object) => {
        const run = await runAs("nobody", [probe, JSON.stringify(input)], root);
        assert.equal(run.code, 0, run.stderr);
        return JSON.parse(run.stdout) as {
          stateDir: string;
          files: Record<string, string>;
          dirs: Record<string, string>;
          create: string;
          commandLines: Record<string, string>;
          control: (number | string)[];
          redis: Record<string, string[]>;
          harvested: number;
          seen: string[];
        };
      };
      const result = await probeAs({
        stateDir,
        files,
        dirs,
        controlUrl: state.controlUrl,
        redisPorts,
        pids,
        scan: root,
      });
      // The other user reaches the state folder (its parent is open): what stops it is its mode.
      assert.equal(result.stateDir, "reached");
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
      for (const [pid, line] of Object.entries(result.commandLines)) {
        assert.ok(
          !line.includes(password) && !line.includes(state.token),
          `pid ${pid} shows a secret: ${line}`,
        );
        assert.ok(!line.includes("ENVIRON-READABLE"), `pid ${pid}'s environment is readable`);
      }
      // Anywhere it can read (the files around the state folder, every process's command line,
      // any environment it may read): no token, password or load secret.
      assert.ok(result.seen.length > 0, "the scan read something");
      for (const secret of [state.token, password, state.loadSecret ?? "-"]) {
        assert.ok(!result.seen.some((text) => text.includes(secret)), "a secret is readable by another user");
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

      // The folders' 0700 aside, the files' own modes: with every folder opened to traversal
      // (0711: enter, not list), the other user reaches each file and still reads or writes none.
      const opened = walk(stateDir);
      try {
        for (const dir of opened.dirs) chmodSync(dir, 0o711);
        const byMode = await probeAs({
          stateDir,
          files: opened.files,
          dirs: [],
          controlUrl: state.controlUrl,
          redisPorts: [],
          pids: [],
          reachable: true,
        });
        const reached = Object.entries(byMode.files).filter(([, r]) => !r.startsWith("unreached"));
        // Files the runtime replaces or removes meanwhile (more of them on a loaded machine) are gone
        // by the probe's turn: that is the only way one may be missed.
        assert.deepEqual(
          Object.entries(byMode.files).filter(
            ([, r]) => r.startsWith("unreached") && r !== "unreached ENOENT",
          ),
          [],
          "every file still there is reached through the opened folders",
        );
        assert.ok(
          reached.length >= opened.files.length / 2,
          `reached by the other user: ${reached.length} of ${opened.files.length}`,
        );
        assert.deepEqual(
          reached.filter(([, r]) => r !== "EACCES"),
          [],
          "every file refuses the other user by its own mode",
        );
        assert.equal(byMode.create, "EACCES", "a 0711 folder takes no file either");
      } finally {
        for (const dir of opened.dirs) chmodSync(dir, 0o700);
      }
    },
  );

  it(
    "the attack of issue 26, as nobody: no token in stack.log or anywhere, POST /roll NODE_OPTIONS answered 401",
    { skip: skipUnlessRoot },
    async () => {
      const plantDir = path.join(root, "attacker");
      mkdirSync(plantDir, { recursive: true });
      chmodSync(plantDir, 0o1777);
      const attack = path.join(root, "attack.mjs");
      copyFileSync(path.join(repoRoot, "test/fixtures/other-user-roll-attack.mjs"), attack);
      chmodSync(attack, 0o644);
      const run = await runAs(
        "nobody",
        [attack, JSON.stringify({ stateDir, controlUrl: state.controlUrl, plantDir })],
        root,
      );
      assert.equal(run.code, 0, run.stderr);
      const result = JSON.parse(run.stdout) as {
        stackLog: string;
        stateFile: string;
        token: boolean;
        roll: number | string;
        planted: string;
      };
      assert.equal(result.planted, path.join(plantDir, "x.cjs"), "the attacker could plant its module");
      assert.equal(result.stackLog, "EACCES");
      assert.equal(result.stateFile, "EACCES");
      assert.equal(result.token, false, "no token found");
      assert.equal(result.roll, 401);
      assert.deepEqual(
        readdirSync(plantDir).filter((f) => f.startsWith("ran-")),
        [],
        "the planted module ran",
      );
    },
  );

  it("the same attack with the token (a leak): POST /roll NODE_OPTIONS is refused, the planted code never runs", async () => {
    const plantDir = path.join(root, "attacker-with-token");
    mkdirSync(plantDir, { recursive: true });
    const planted = path.join(plantDir, "x.cjs");
    writeFileSync(
      planted,
      'require("node:fs").writeFileSync(require("node:path").join(__dirname, `ran-${process.pid}`), "ran");\n',
    );
    // The attack is real: a Node.js process started with this NODE_OPTIONS runs the planted module.
    execFileSync(process.execPath, ["-e", "0"], {
      env: { PATH: process.env.PATH, NODE_OPTIONS: `--require ${planted}` },
    });
    const ran = readdirSync(plantDir).filter((f) => f.startsWith("ran-"));
    assert.equal(ran.length, 1, "the planted module runs under NODE_OPTIONS");
    for (const f of ran) rmSync(path.join(plantDir, f));

    const before = (await status()).instances.map((i) => i.id).sort();
    const res = await request(`${state.controlUrl}/roll`, {
      method: "POST",
      body: JSON.stringify({ settings: { NODE_OPTIONS: `--require ${planted}` } }),
      headers: { authorization: `Bearer ${state.token}`, "content-type": "application/json" },
    });
    const body = (await res.body.json()) as { error?: string; problems?: string[] };
    assert.equal(res.statusCode, 400, JSON.stringify(body));
    // The field, why, and the fix.
    assert.match(body.error ?? "", /^NODE_OPTIONS cannot be an instance setting: .*loads? code/);
    assert.match(body.error ?? "", /webService\.start's command in stayup\.config\.ts/);
    assert.deepEqual(body.problems?.length, 1);
    // Nothing rolled, nothing ran: the same instances, none with NODE_OPTIONS, no marker.
    const s = await status();
    assert.deepEqual(s.instances.map((i) => i.id).sort(), before);
    for (const i of s.instances) assert.equal(environOf(i.pid).NODE_OPTIONS, undefined, i.id);
    assert.deepEqual(
      readdirSync(plantDir).filter((f) => f.startsWith("ran-")),
      [],
    );
    assert.ok(!existsSync(path.join(stateDir, "planted.cjs")));
  });
});
