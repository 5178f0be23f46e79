import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { request } from "undici";
import type { StackStatus } from "../src/local/runtime.ts";
import { serviceVersion } from "../src/web-service/version.ts";
import { configPath, runCli, tempDir, upDetached } from "./helpers.ts";

/**
 * Issue 25, item 5: the version is the service (bundle and settings), not this run's wiring. A
 * `down` then `up` with no change, on other free ports, serves the same version; `up` on a running
 * stack with no change rolls nothing.
 */
describe("the service version across down and up", { timeout: 400_000 }, () => {
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

  const stateDir = path.join(tempDir(), ".stayup");
  after(async () => {
    await runCli(["down", "--state-dir", stateDir]);
  });
  const servedVersion = async () => {
    const s = JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as StackStatus;
    const res = await request(`${s.listener}/`, { reset: true });
    return ((await res.body.json()) as { version: string }).version;
  };

  it("down then up on other free ports serves the same version, and up rolls nothing", async () => {
    await upDetached(stateDir);
    const first = await servedVersion();
    const down = await runCli(["down", "--state-dir", stateDir]);
    assert.equal(down.code, 0, down.stderr);
    await upDetached(stateDir);
    const second = await servedVersion();
    assert.equal(second, first, "same bundle and settings: the same version");
    // The running stack at this version: `up` has nothing to roll.
    const again = await runCli(["up", "--state-dir", stateDir, "--config", configPath]);
    assert.equal(again.code, 1, again.stdout + again.stderr);
    assert.match(again.stderr, /already runs this version/);
  });
});
