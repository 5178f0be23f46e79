import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, cpSync, rmSync, symlinkSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { SteadyTraffic } from "../src/drills/traffic.ts";
import { StackClient } from "../src/local/control-plane/client.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { findFreePort } from "../src/shared/net.ts";
import { type CliResult, repoRoot, tempDir, waitFor } from "./helpers.ts";

/**
 * A user's loop: `stayup up`, edit the service, `stayup up` again. The second `up` finds the stack
 * running with an older service bundle and rolls it. The sources are a copy (the edit must not touch
 * the repository other tests build from); node_modules is shared through a link.
 */
describe("`stayup up` on a running stack whose service bundle changed", { timeout: 420_000 }, () => {
  const dir = tempDir("stayup-up-roll-");
  const stateDir = path.join(dir, ".stayup");
  let ports: string[] = [];
  const cli = (args: string[], timeoutMs = 240_000): Promise<CliResult> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [path.join(dir, "bin/stayup.mjs"), ...args], { cwd: dir });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d));
      child.stderr.on("data", (d: Buffer) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  const common = () => ["--config", path.join(dir, "stayup.config.ts"), "--state-dir", stateDir];
  // What `status --json` prints, from the control plane: no CLI process (and bundle load) per look.
  const status = (): Promise<StackStatus> => StackClient.require(stateDir).status();
  const versionAt = async (listener: string) => {
    const res = await request(`${listener}/`, { reset: true });
    return ((await res.body.json()) as { version: string; instanceId: string }).version;
  };

  before(async () => {
    for (const f of ["src", "bin", "package.json", "tsconfig.json", "stayup.config.ts"]) {
      cpSync(path.join(repoRoot, f), path.join(dir, f), { recursive: true });
    }
    symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"), "dir");
    ports = [
      "--port",
      String(await findFreePort()),
      "--redis-port",
      String(await findFreePort()),
      "--dns-port",
      String(await findFreePort()),
    ];
    const up = await cli(["up", "--detach", ...ports, ...common()]);
    assert.equal(up.code, 0, up.stderr + up.stdout);
  });
  after(async () => {
    await cli(["down", "--state-dir", stateDir]);
    rmSync(dir, { recursive: true, force: true }); // the copy of the sources
  });

  it("rolls every instance to the new version with 0 failed requests for a client meanwhile", async () => {
    const before = await status();
    const oldIds = before.instances.filter((i) => i.healthy).map((i) => i.id);
    assert.ok(oldIds.length >= 2);
    const oldVersion = await versionAt(before.listener);

    // The edit: a statement esbuild keeps, so the bundle (and so the version) changes.
    appendFileSync(
      path.join(dir, "src/web-service/main.ts"),
      '\n(globalThis as Record<string, unknown>).stayupEditedByTest = "yes";\n',
    );
    const traffic = new SteadyTraffic(before.listener, {
      rate: 50,
      maxDurationMs: 300_000,
      maxRequests: 30_000,
    });
    traffic.start();
    const again = await cli(["up", ...ports, ...common()]);
    const seen = await traffic.stop();
    assert.equal(again.code, 0, again.stderr + again.stdout);
    const replaced = new RegExp(
      `primary ${before.region}: ${oldVersion} → v-\\w+: (\\d+) instances replaced`,
    ).exec(again.stdout);
    assert.ok(replaced, again.stdout);
    // Every instance in service when the roll began: those seen before it, and any that target
    // tracking added since (a loaded machine's queued event loops read as busy instances).
    assert.ok(Number(replaced[1]) >= oldIds.length, again.stdout);
    assert.equal(seen.failed, 0, JSON.stringify(seen.failures));
    assert.ok(seen.requests > 0);
    assert.equal(seen.counterContinuous, true);

    // As many healthy instances as the group wants, its wish read with them (see above).
    const afterRoll = await waitFor(
      "as many healthy instances as the group's desired capacity",
      async () => {
        const s = await status();
        return s.instances.filter((i) => i.healthy).length === s.group.desired ? s : undefined;
      },
      60_000,
    );
    for (const id of oldIds) assert.ok(!afterRoll.instances.some((i) => i.id === id), `${id} still runs`);
    const newVersion = /→ (v-\w+)/.exec(again.stdout)?.[1];
    assert.ok(newVersion && newVersion !== oldVersion);
    // Every instance answers with the new version (a new connection each time: round robin).
    for (let i = 0; i < oldIds.length * 2; i++) assert.equal(await versionAt(afterRoll.listener), newVersion);

    // Nothing changed since: `up` again rolls nothing and says so.
    const third = await cli(["up", ...ports, ...common()]);
    assert.equal(third.code, 1);
    assert.match(third.stderr, /already runs this version/);
  });

  it("Ctrl-C while `up` rolls: the roll stopped with rollback, exit 130, the stack on the version it ran", async () => {
    const before = await status();
    const found = before.version as string;
    assert.ok(found && before.instances.every((i) => i.version === found));
    appendFileSync(
      path.join(dir, "src/web-service/main.ts"),
      '\n(globalThis as Record<string, unknown>).stayupEditedAgain = "then interrupted";\n',
    );
    const child = spawn(process.execPath, [path.join(dir, "bin/stayup.mjs"), "up", ...ports, ...common()], {
      cwd: dir,
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    try {
      // Interrupted once an instance of the new version serves (or, on a fast machine, the roll is
      // over: the stop then rolls the completed roll back, the same end).
      await waitFor(
        "an instance of the new version in service",
        async () => (await status()).instances.some((i) => i.healthy && i.version !== found) || undefined,
        120_000,
      );
      child.kill("SIGINT");
      const code = await exited;
      assert.equal(code, 130, stderr);
      assert.match(
        stderr,
        new RegExp(`stayup up interrupted \\(SIGINT\\): the roll stopped, the stack back on ${found}`),
      );
      const now = await status();
      assert.equal(now.version, found);
      assert.deepEqual(
        now.instances.map((i) => i.version),
        now.instances.map(() => found),
      );
      assert.equal(await versionAt(now.listener), found);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
