import assert from "node:assert/strict";
import { chmodSync, lstatSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { request } from "undici";
import { StackClient } from "../src/local/control-plane/client.ts";
import { findFreePort } from "../src/shared/net.ts";
import { serviceVersion } from "../src/web-service/version.ts";
import { repoRoot, runCli, tempDir, upDetached } from "./helpers.ts";

/** What is compared here is the primary region's: the secondary region is not exercised. */
const oneRegionConfig = path.join(repoRoot, "test/fixtures/one-region.config.ts");

/**
 * Issue 25, item 5: the version is the service (bundle and settings), not this run's wiring. A
 * `down` then `up` with no change, on other free ports, serves the same version; `up` on a running
 * stack with no change rolls nothing (the stack of the second `up` is the one the suite below uses).
 */
it("wiring (ports, Sentinels, the run's secrets) is no part of the version; a setting is", () => {
  const bundle = path.join(tempDir(), "bundle.js");
  writeFileSync(bundle, "console.log('x');\n");
  const run = (port: number, secret: string) => ({
    LOG_LEVEL: "info",
    STAYUP_REDIS_WAIT_REPLICAS: "1",
    STAYUP_REDIS_SENTINELS: `127.0.0.1:${port},127.0.0.1:${port + 1}`,
    STAYUP_REDIS_URL: `redis://127.0.0.1:${port}`,
    STAYUP_REDIS_PASSWORD: secret,
    STAYUP_LOAD_SECRET: secret,
  });
  assert.equal(serviceVersion(bundle, run(6390, "a")), serviceVersion(bundle, run(41000, "b")));
  assert.notEqual(
    serviceVersion(bundle, run(6390, "a")),
    serviceVersion(bundle, { ...run(6390, "a"), LOG_LEVEL: "debug" }),
  );
});

describe(
  "`stayup up` on a running stack refuses what differs from it, naming it",
  { timeout: 300_000 },
  () => {
    const dir = tempDir();
    const stateDir = path.join(dir, ".stayup");
    let client: StackClient;
    after(async () => {
      await runCli(["down", "--state-dir", stateDir], { timeoutMs: 90_000 });
    });

    const upAgain = (args: string[]) =>
      runCli(["up", "--config", oneRegionConfig, "--state-dir", stateDir, ...args], {
        cwd: dir,
        timeoutMs: 120_000,
      });

    const servedVersion = async () => {
      const res = await request(`${client.state.listener}/`, { reset: true });
      return ((await res.body.json()) as { version: string }).version;
    };

    // Before the others: it leaves the stack they refuse to change running (one stack start fewer
    // than a stack of its own: this was test/version-across-restarts.test.ts).
    it("down then up on other free ports serves the same version, and up rolls nothing", async () => {
      await upDetached(stateDir, { cwd: dir, config: oneRegionConfig });
      client = StackClient.require(stateDir);
      const first = await servedVersion();
      const down = await runCli(["down", "--state-dir", stateDir]);
      assert.equal(down.code, 0, down.stderr);
      await upDetached(stateDir, { cwd: dir, config: oneRegionConfig });
      client = StackClient.require(stateDir);
      const second = await servedVersion();
      assert.equal(second, first, "same bundle and settings: the same version");
      // The running stack at this version: `up` has nothing to roll.
      const again = await upAgain([]);
      assert.equal(again.code, 1, again.stdout + again.stderr);
      assert.match(again.stderr, /already runs this version/);
    });

    it("another environment, topology or port: exit 1 naming each, and nothing rolled", async () => {
      const before = await client.status();
      const ids = before.instances.map((i) => i.id).sort();
      const port = Number(new URL(before.listener).port);

      const env = await upAgain(["--env", "prod"]);
      assert.equal(env.code, 1, env.stderr + env.stdout);
      assert.match(env.stderr, /not the one asked for: --env prod \(it runs environment "dev"\)/);

      const topology = await upAgain(["--env", "prod", "--topology", "ecs"]);
      assert.equal(topology.code, 1, topology.stderr + topology.stdout);
      assert.match(
        topology.stderr,
        /--env prod \(it runs environment "dev"\), --topology ecs \(it runs topology "load-balanced"\)/,
      );

      const other = await findFreePort();
      const listener = await upAgain(["--port", String(other)]);
      assert.equal(listener.code, 1, listener.stderr + listener.stdout);
      assert.match(listener.stderr, new RegExp(`--port ${other} \\(it listens on ${port}\\)`));
      assert.match(listener.stderr, /fix: stop it first \(`stayup down`\)/);

      const after = await client.status();
      assert.deepEqual(after.instances.map((i) => i.id).sort(), ids, "no instance replaced");
      assert.equal(after.topology, "load-balanced");

      // The options it runs with, given again: no difference, so the usual answer.
      const same = await upAgain(["--env", "dev", "--port", String(port)]);
      assert.match(same.stderr, /already runs this version/, same.stderr);
    });

    it("does not undo a `roll --set`: the settings rolled stay, nothing is replaced", async () => {
      const roll = await runCli(["roll", "--set", "LOG_LEVEL=debug", "--state-dir", stateDir], {
        cwd: dir,
        timeoutMs: 180_000,
      });
      assert.equal(roll.code, 0, roll.stderr + roll.stdout);
      const rolled = (await client.status()).instances.map((i) => i.id).sort();
      // Loosened meanwhile (a chmod, a tool): this `up` makes the folder private again (issue 26).
      chmodSync(stateDir, 0o755);
      chmodSync(path.join(stateDir, "stack.log"), 0o644);
      chmodSync(path.join(stateDir, "logs"), 0o755);
      const again = await upAgain([]);
      assert.equal(again.code, 1, again.stderr + again.stdout);
      assert.match(again.stderr, /already runs this version/);
      for (const [name, mode] of [
        [".", 0o700],
        ["stack.log", 0o600],
        ["logs", 0o700],
      ] as const) {
        assert.equal(lstatSync(path.join(stateDir, name)).mode & 0o777, mode, `${name} made private again`);
      }
      assert.deepEqual(
        (await client.status()).instances.map((i) => i.id).sort(),
        rolled,
        "no instance replaced",
      );
    });
  },
);
