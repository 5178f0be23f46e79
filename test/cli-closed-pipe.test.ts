import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { cliPath, standInStatus, startStandInControlPlane, tempDir } from "./helpers.ts";

/**
 * Issue 25, item 10: `stayup status | head -4`. The reader closes the pipe after a few lines; the
 * CLI drops the rest instead of dying on EPIPE with a stack trace. The stack is a stand-in control
 * plane (a loopback server answering /status) with enough instances that the output cannot fit
 * in the pipe's buffer, so the write after the close always fails.
 */
describe("status piped into a reader that stops early", { timeout: 60_000 }, () => {
  const stateDir = tempDir();
  const instances = Array.from({ length: 3000 }, (_, i) => ({
    id: `i-${String(i).padStart(16, "0")}`,
    az: "eu-west-3a",
    pid: 1000 + i,
    port: 20000 + i,
    state: "in-service",
    health: "healthy",
    healthy: true,
  }));
  const group = { min: 2, desired: 3000, max: 3000, inService: 3000 };
  const status = standInStatus({
    group,
    instances,
    regions: [
      {
        name: "eu-west-3",
        role: "primary",
        listener: "http://127.0.0.1:1",
        down: false,
        availabilityZones: [{ name: "eu-west-3a", impaired: false }],
        group,
        instances,
      },
    ],
  });
  let server: Server;
  before(async () => {
    server = await startStandInControlPlane(stateDir, status);
  });
  after(() => server.close());

  it("exits 0 without a stack trace when the pipe closes after the first lines", async () => {
    const child = spawn(process.execPath, [cliPath, "status", "--state-dir", stateDir]);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    let firstLines = "";
    child.stdout.once("data", (d: Buffer) => {
      firstLines = d.toString();
      child.stdout.destroy(); // as `head -4` does once it has its lines
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    assert.match(firstLines, /^stayup \(dev, topology load-balanced\)/);
    assert.doesNotMatch(stderr, /EPIPE|Error|at /, stderr);
    assert.equal(code, 0, stderr);
  });
});
