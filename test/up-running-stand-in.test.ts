import assert from "node:assert/strict";
import type { Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { mismatches } from "../src/cli/commands/up/index.ts";
import { runCli, standInStatus, startStandInControlPlane, tempDir } from "./helpers.ts";

/**
 * `stayup up` on a running stack: options that ask for another stack (here its Redis and DNS
 * ports; test/up-running.test.ts has environment, topology and listener on a real stack) are
 * refused, naming each; otherwise it rolls the stack to the current bundle, and when that roll
 * fails `up` says so rather than "already runs this version". The stack is a stand-in control plane
 * (a loopback server answering /status, and /roll with the error a failed bundle build gives): no
 * stack is started.
 */
describe(
  "up on a running stack (a stand-in): what it asks, and a roll that fails",
  { timeout: 60_000 },
  () => {
    const stateDir = tempDir();
    const rolls: string[] = [];
    const status = standInStatus({
      redis: {
        url: "redis-sentinel://127.0.0.1:26379/stayup",
        nodes: [
          { name: "redis-a", az: "eu-west-3a", port: 51958, role: "primary" },
          { name: "redis-b", az: "eu-west-3b", port: 40861, role: "replica" },
        ],
      },
      dns: {
        name: "app.stayup.test",
        server: "127.0.0.1:51959",
        answer: "127.0.0.1",
        primaryHealthy: true,
        failedOver: false,
        regionDetectionMs: 8000,
        inRegionBudgetMs: 6000,
        ttlSeconds: 1,
      },
    });
    let server: Server;
    before(async () => {
      // A roll answers the error a failed bundle build gives.
      server = await startStandInControlPlane(stateDir, status, (req, res) => {
        if (req.url !== "/roll") return false;
        rolls.push(req.method ?? "");
        res.statusCode = 500;
        res.end(
          JSON.stringify({
            error: 'Build failed with 1 error: src/web-service/main.ts:3:1: ERROR: Unexpected "}"',
          }),
        );
        return true;
      });
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

    it("another --redis-port or --dns-port is refused, naming each, and nothing is rolled (issue 25, item 4)", async () => {
      rolls.length = 0;
      const res = await runCli(["up", "--redis-port", "7000", "--dns-port", "7001", "--state-dir", stateDir]);
      assert.equal(res.code, 1, res.stderr);
      assert.match(
        res.stderr,
        /not the one asked for: --redis-port 7000 \(its Redis listens on 51958\), --dns-port 7001 \(its DNS server listens on 51959\)/,
      );
      assert.match(res.stderr, /fix: stop it first \(`stayup down`\)/);
      assert.deepEqual(rolls, [], "nothing rolled");
    });

    it("the ports it runs on, or 0, ask for nothing else (pure)", () => {
      const opts = { config: "c", env: "dev", stateDir, redisPort: 51958, dnsPort: 51959 } as const;
      assert.deepEqual(mismatches(status, opts, new Set()), []);
      assert.deepEqual(mismatches(status, { ...opts, redisPort: 0, dnsPort: 0 }, new Set()), []);
      // A single instance's Redis and no DNS server: nothing to compare.
      assert.deepEqual(
        mismatches(
          { ...status, redis: { url: "redis://127.0.0.1:3" }, dns: undefined },
          { ...opts, redisPort: 7000, dnsPort: 7001 },
          new Set(),
        ),
        [],
      );
    });
  },
);
