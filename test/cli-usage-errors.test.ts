import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import type { FaultInForce } from "../src/local/faults/registry.ts";
import { runCli, standInStatus, startStandInControlPlane, tempDir } from "./helpers.ts";

/** Issue 25, item 10: what a new user's usual mistakes print, with no stack running. */
describe("the CLI's answers to usual mistakes", { timeout: 120_000 }, () => {
  it("down with nothing up exits 0 (safe to run twice), saying there was nothing to stop", async () => {
    const stateDir = path.join(tempDir(), ".stayup");
    for (let i = 0; i < 2; i++) {
      const res = await runCli(["down", "--state-dir", stateDir]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /no stack is running from .*: nothing to stop/);
    }
  });

  it("roll --stop takes no --set (it starts nothing), and with nothing up says so with the fix", async () => {
    const stateDir = path.join(tempDir(), ".stayup");
    const both = await runCli(["roll", "--stop", "--set", "LOG_LEVEL=debug", "--state-dir", stateDir]);
    assert.equal(both.code, 1, both.stderr);
    assert.match(both.stderr, /--stop stops the roll under way: it takes no --set/);
    assert.match(both.stderr, /drop --set, or drop --stop/);
    const none = await runCli(["roll", "--stop", "--state-dir", stateDir]);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /no stack is running from/);
  });

  it("faults clear with nothing up exits 0, saying no fault is in force (safe in a cleanup)", async () => {
    const stateDir = path.join(tempDir(), ".stayup");
    const res = await runCli(["faults", "clear", "--state-dir", stateDir]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /no stack is running from .*: no fault in force/);
    const json = await runCli(["faults", "clear", "--json", "--state-dir", stateDir]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { cleared: [], inForce: [] });
  });

  it("faults lists what is in force and what clears it; with nothing up, none (exit 0)", async () => {
    const stateDir = path.join(tempDir(), ".stayup");
    const none = await runCli(["faults", "--state-dir", stateDir]);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /no stack is running from .*: no fault in force/);
    assert.deepEqual(JSON.parse((await runCli(["faults", "--json", "--state-dir", stateDir])).stdout), {
      inForce: [],
    });

    mkdirSync(stateDir, { recursive: true });
    const fault = {
      id: "az-outage:eu-west-3:eu-west-3a",
      kind: "az-outage",
      region: "eu-west-3",
      description: "availability zone eu-west-3a impaired (its instances killed, nothing launches there)",
      since: "2026-12-07T10:00:00.000Z",
      clear: "stayup faults clear",
    } satisfies FaultInForce;
    const server = await startStandInControlPlane(
      stateDir,
      standInStatus({ faults: [fault] }),
      (req, res) => {
        if (req.url !== "/faults") return false;
        res.end(JSON.stringify({ faults: [fault] }));
        return true;
      },
    );
    try {
      const listed = await runCli(["faults", "--state-dir", stateDir]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /FAULTS IN FORCE \(1\):/);
      assert.match(listed.stdout, /availability zone eu-west-3a impaired .*, since 2026-12-07T10:00:00.000Z/);
      assert.match(listed.stdout, /clear them: stayup faults clear/);
      const json = await runCli(["faults", "--json", "--state-dir", stateDir]);
      assert.deepEqual(JSON.parse(json.stdout), { inForce: [fault] });
    } finally {
      server.close();
    }
  });

  it("status --json with no stack prints JSON (the error and its fix) and exits 1", async () => {
    const res = await runCli(["status", "--json", "--state-dir", path.join(tempDir(), ".stayup")]);
    assert.equal(res.code, 1);
    const body = JSON.parse(res.stdout) as { running: boolean; error: string; fix: string };
    assert.equal(body.running, false);
    assert.match(body.error, /no stack is running/);
    assert.match(body.fix, /stayup up/);
  });

  it("report given the HTML names the JSON beside it as the fix", async () => {
    const html = path.join(tempDir(), "redis-failover.html");
    writeFileSync(html, "<!doctype html><html></html>\n");
    const res = await runCli(["report", html]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /is not JSON/);
    assert.match(res.stderr, /fix: pass that \.json: `stayup report .*redis-failover\.json`/);
  });

  it("report given an HTML name that is not there, its JSON beside it, names that JSON as the fix", async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, "x.json"), "{}\n");
    const res = await runCli(["report", path.join(dir, "x.html")]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no such file: .*x\.html/);
    assert.ok(
      res.stderr.includes(`fix: pass the .json beside it: \`stayup report ${path.join(dir, "x.json")}\``),
      res.stderr,
    );
    // Nothing beside it: the general fix.
    const none = await runCli(["report", path.join(dir, "y.html")]);
    assert.match(none.stderr, /fix: pass the \.json a drill wrote/);
  });

  it("an unknown option prints the error and where the usage is, not the whole help", async () => {
    for (const [args, usage] of [
      [["status", "--bogus"], "stayup status --help"],
      [["drill", "kill-instance", "--bogus"], "stayup drill kill-instance --help"],
    ] as const) {
      const res = await runCli([...args]);
      assert.equal(res.code, 1);
      assert.match(res.stderr, /error: unknown option '--bogus'/);
      assert.ok(res.stderr.includes(`fix: see \`${usage}\``), res.stderr);
      assert.doesNotMatch(res.stderr, /Usage:/);
      assert.ok(res.stderr.trim().split("\n").length <= 3, res.stderr);
    }
  });

  it("an unknown command says so with the nearest name, and points at the commands, not only the options", async () => {
    for (const [args, nearest, usage] of [
      [["stauts"], "status", "stayup --help"],
      [["drill", "kil-instance"], "kill-instance", "stayup drill --help"],
    ] as const) {
      const res = await runCli([...args]);
      assert.equal(res.code, 1);
      assert.match(res.stderr, new RegExp(`error: unknown command '${args.at(-1)}'`));
      assert.ok(res.stderr.includes(`Did you mean ${nearest}?`), res.stderr);
      assert.ok(res.stderr.includes(`fix: see \`${usage}\` for the commands and options`), res.stderr);
      assert.doesNotMatch(res.stderr, /Usage:/);
    }
  });
});
