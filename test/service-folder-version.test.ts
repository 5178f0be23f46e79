import assert from "node:assert/strict";
import { cpSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { request } from "undici";
import type { RollResult } from "../src/local/rolling-deploy/roll.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { serviceFolderDigest } from "../src/web-service/version.ts";
import { repoRoot, runCli, tempDir } from "./helpers.ts";

/**
 * Issue 23's last gap: the version of your own service (webService.start) is its folder too, so
 * `stayup roll` (and `up` on a running stack) after a change to the service's code rolls to a new
 * version, where it used to answer "already at this version" (only the counter's bundle and the
 * settings were hashed).
 */
describe("what a service folder's digest covers", () => {
  const folder = () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, "server.py"), "print('a')\n");
    mkdirSync(path.join(dir, "node_modules", "dep"), { recursive: true });
    writeFileSync(path.join(dir, "node_modules", "dep", "index.js"), "module.exports = 1;\n");
    return dir;
  };

  it("the same folder, the same digest; a changed file or dependency, another", () => {
    const dir = folder();
    const first = serviceFolderDigest({ path: dir });
    assert.equal(serviceFolderDigest({ path: dir }), first);
    writeFileSync(path.join(dir, "server.py"), "print('b')\n");
    utimesSync(path.join(dir, "server.py"), new Date(), new Date(Date.now() + 5000));
    const edited = serviceFolderDigest({ path: dir });
    assert.notEqual(edited, first, "a code change");
    writeFileSync(path.join(dir, "node_modules", "dep", "index.js"), "module.exports = 2;\n");
    assert.notEqual(serviceFolderDigest({ path: dir }), edited, "node_modules is code too");
  });

  it("leaves out version control, stayup's state, CDK's output, Python's caches and the state folder", () => {
    const dir = folder();
    const first = serviceFolderDigest({ path: dir, exclude: [path.join(dir, "state")] });
    for (const sub of [".git", ".stayup", ".stayup-2", "cdk.out", "cdk.out.deploy", "__pycache__", "state"]) {
      mkdirSync(path.join(dir, sub), { recursive: true });
      writeFileSync(path.join(dir, sub, "written-while-running"), String(Date.now()));
    }
    assert.equal(serviceFolderDigest({ path: dir, exclude: [path.join(dir, "state")] }), first);
  });

  it("a folder too big to be one service is refused, with the fix", () => {
    const dir = folder();
    assert.throws(
      () => serviceFolderDigest({ path: dir }, 2),
      (e: Error & { hint?: string }) =>
        /holds more than 2 files and folders/.test(e.message) && /workingDirectory/.test(String(e.hint)),
    );
  });
});

describe("roll after a change to your own service's code", { timeout: 600_000 }, () => {
  // The Python example, copied: its description names its folder ("."), the state folder inside it.
  const project = tempDir();
  cpSync(path.join(repoRoot, "examples", "python-stdlib"), project, { recursive: true });
  const cli = (args: string[], timeoutMs = 150_000) => runCli(args, { cwd: project, timeoutMs });
  const roll = async (): Promise<RollResult> => {
    const res = await cli(["roll", "--json"], 300_000);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    return JSON.parse(res.stdout) as RollResult;
  };
  const up = async () => {
    const res = await cli(["up", "--detach", "--port", "0", "--redis-port", "0", "--dns-port", "0"]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
  };
  const answers = async (n: number): Promise<string[]> => {
    const status = JSON.parse((await cli(["status", "--json"])).stdout) as StackStatus;
    const bodies: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await request(`${status.listener}/`, { reset: true });
      bodies.push(await res.body.text());
    }
    return bodies;
  };
  after(async () => {
    await cli(["down"]);
  });

  it("no change: already at this version; a changed file: a new version whose instances serve it", async () => {
    await up();
    const unchanged = await roll();
    assert.equal(unchanged.reason, "already at this version");
    assert.deepEqual(unchanged.instancesReplaced, []);
    assert.ok((await answers(4)).every((b) => b.includes('"from Python"')));

    const server = path.join(project, "server.py");
    writeFileSync(server, readFileSync(server, "utf8").replace('"from Python"', '"from Python, edited"'));
    const changed = await roll();
    assert.equal(changed.rolledBack, false, JSON.stringify(changed));
    assert.notEqual(changed.toVersion, changed.fromVersion);
    assert.ok(changed.instancesReplaced.length > 0, JSON.stringify(changed));
    const served = await answers(6);
    assert.ok(
      served.every((b) => b.includes('"from Python, edited"')),
      `every instance serves the edit: ${served.join(" | ")}`,
    );

    // Down and up with no change: the same version (the state folder's logs and data are no part of it).
    const down = await cli(["down"]);
    assert.equal(down.code, 0, down.stderr);
    await up();
    const again = await roll();
    assert.equal(again.reason, "already at this version");
    assert.equal(again.fromVersion, changed.toVersion);
  });
});
