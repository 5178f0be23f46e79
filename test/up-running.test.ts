import assert from "node:assert/strict";
import { chmodSync, lstatSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { StackClient } from "../src/local/control-plane/client.ts";
import { findFreePort } from "../src/shared/net.ts";
import { configPath, runCli, tempDir, upDetached } from "./helpers.ts";

describe(
  "`stayup up` on a running stack refuses what differs from it, naming it",
  { timeout: 300_000 },
  () => {
    const dir = tempDir();
    const stateDir = path.join(dir, ".stayup");
    let client: StackClient;
    before(async () => {
      await upDetached(stateDir, { cwd: dir });
      client = StackClient.require(stateDir);
    });
    after(async () => {
      await runCli(["down", "--state-dir", stateDir], { timeoutMs: 90_000 });
    });

    const upAgain = (args: string[]) =>
      runCli(["up", "--config", configPath, "--state-dir", stateDir, ...args], {
        cwd: dir,
        timeoutMs: 120_000,
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
