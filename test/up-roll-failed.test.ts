import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { stateFileName } from "../src/local/control-plane/state-file.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { runCli, tempDir } from "./helpers.ts";

/**
 * `stayup up` on a running stack rolls it to the current bundle; when that roll fails, `up` says so
 * rather than "already runs this version". The stack is a stand-in control plane (a loopback server
 * answering /status, and /roll with the error a failed bundle build gives): no stack is started.
 */
describe("up on a running stack whose roll fails", { timeout: 60_000 }, () => {
  const stateDir = tempDir();
  const rolls: string[] = [];
  const status = {
    name: "stayup",
    environment: "dev",
    topology: "load-balanced",
    region: "eu-west-3",
    listener: "http://127.0.0.1:1",
    pid: process.pid,
    redis: { url: "redis://127.0.0.1:2" },
    group: { min: 2, desired: 2, max: 4, inService: 2 },
    instances: [],
    regions: [],
  } satisfies StackStatus;
  const server = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    if (req.url === "/roll") {
      rolls.push(req.method ?? "");
      res.statusCode = 500;
      res.end(
        JSON.stringify({
          error: 'Build failed with 1 error: src/web-service/main.ts:3:1: ERROR: Unexpected "}"',
        }),
      );
      return;
    }
    res.end(req.url === "/status" ? JSON.stringify(status) : "{}");
  });
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    writeFileSync(
      path.join(stateDir, stateFileName),
      JSON.stringify({
        pid: process.pid,
        controlUrl: `http://127.0.0.1:${port}`,
        token: "t",
        listener: "http://127.0.0.1:1",
        environment: "dev",
        startedAt: new Date().toISOString(),
      }),
    );
  });
  after(() => server.close());

  it("exits 1 with the roll's error and a fix, not 'already runs this version'", async () => {
    const res = await runCli(["up", "--state-dir", stateDir]);
    assert.deepEqual(rolls, ["POST"], "up asked the stack to roll");
    assert.equal(res.code, 1, res.stderr);
    assert.doesNotMatch(res.stderr, /already runs this version/);
    assert.match(
      res.stderr,
      /bringing it to the current version failed: roll refused: Build failed with 1 error/,
    );
    assert.match(res.stderr, /fix: fix what the error names, then run `stayup up`/);
  });
});
