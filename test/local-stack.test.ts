import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import type { RegionOutagePhases } from "../src/drills/region-outage.ts";
import type { DrillReport } from "../src/drills/report.ts";
import { StackClient } from "../src/local/control-plane/client.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { assertPortFree, findFreePort } from "../src/shared/net.ts";
import { configPath, isAlive, repoRoot, runCli, tempDir, waitFor } from "./helpers.ts";

const oneRegionConfig = path.join(repoRoot, "test/fixtures/one-region.config.ts");
/**
 * Half a second of steady traffic before the fault and after the recovery (1.5 s each by default),
 * through the drills' own options, where the test checks the drill's verdict and figures about the
 * fault, not the amount of traffic (kill-instance's test counts its requests: the default phases).
 */
const shortPhases = ["--warmup-seconds", "0.5", "--cooldown-seconds", "0.5"];

/** A failure the region recovers from by itself: DNS stays on the primary, the standby stays idle. */
function assertNoRegionFailover(report: DrillReport): void {
  const events = (report as unknown as { events: { type: string; healthy?: boolean; answer?: string }[] })
    .events;
  assert.ok(events.length > 0, "the report carries the run's events");
  const regionEvents = events.filter(
    (e) =>
      (e.type === "dns.health-changed" && (e.healthy === false || e.answer !== "127.0.0.1")) ||
      e.type === "failover.action" ||
      e.type === "alarm.state-changed",
  );
  assert.deepEqual(
    regionEvents,
    [],
    "no region failover: no unhealthy primary, no alarm, no standby started",
  );
}

/** The stack a user gets from the README, on free ports, driven through the real CLI. */
// A bound against a hang, not a speed requirement: beside other suites or a busy machine it takes longer.
describe("local stack through the CLI", { timeout: 900_000 }, () => {
  const dir = tempDir();
  const stateDir = path.join(dir, ".stayup");
  let port: number;
  let redisPort: number;
  let dnsPort = 0;
  const common = () => ["--config", configPath, "--state-dir", stateDir];
  const ports = () => [
    "--port",
    String(port),
    "--redis-port",
    String(redisPort),
    "--dns-port",
    String(dnsPort),
  ];
  const status = async () =>
    JSON.parse((await runCli(["status", "--json", "--state-dir", stateDir])).stdout) as StackStatus;
  /**
   * What `status --json` prints (it prints this object), without a CLI process per look: for the
   * waits below, which look every 50 ms, and every test that reads the stack rather than the CLI's
   * printing of it (a CLI run costs most of a second of CPU; the first test reads it through the CLI).
   */
  const polledStatus = () => StackClient.require(stateDir).status();

  before(async () => {
    port = await findFreePort();
    redisPort = await findFreePort();
    dnsPort = await findFreePort();
    const up = await runCli(["up", "--detach", ...ports(), ...common()], {
      cwd: dir,
      timeoutMs: 150_000,
    });
    assert.equal(up.code, 0, up.stderr + up.stdout);
    assert.match(up.stdout, new RegExp(`stayup is up .*127\\.0\\.0\\.1:${port}`));
  });
  after(async () => {
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("status --json lists the instances spread over the AZs, all healthy", async () => {
    const s = await status();
    assert.equal(s.listener, `http://127.0.0.1:${port}`);
    assert.equal(s.instances.length, s.group.desired);
    assert.ok(s.group.desired >= 2);
    for (const i of s.instances) {
      assert.match(i.id, /^i-[0-9a-f]{16}$/);
      assert.ok(isAlive(i.pid));
      assert.ok(i.port > 0);
      assert.equal(i.healthy, true);
      assert.match(i.az, /^eu-west-3[abc]$/);
    }
    assert.equal(new Set(s.instances.map((i) => i.az)).size, s.instances.length, "one instance per AZ");
    // At rest the runtime holds no bundler: esbuild's service process (about 90 MB) went after the build.
    const children = execFileSync("ps", ["-o", "args=", "--ppid", String(s.pid)], { encoding: "utf8" });
    assert.doesNotMatch(children, /esbuild/, children);
    assert.match(children, /redis-server/, "the runtime's children are listed");
    const table = await runCli(["status", "--state-dir", stateDir]);
    assert.match(table.stdout, /REGION\s+INSTANCE\s+AZ\s+PID\s+PORT\s+STATE\s+HEALTH/);
    assert.match(table.stdout, /secondary us-east-1: http:\/\/127\.0\.0\.2:\d+ {3}group 0\/0 in service/);
    assert.match(
      table.stdout,
      /dns app\.stayup\.test on udp:\/\/127\.0\.0\.1:\d+ → 127\.0\.0\.1 \(primary healthy\)/,
    );
    assert.match(
      table.stdout,
      /called down after 8 s of failed checks, past its 6\.5 s in-region recovery budget/,
    );
  });

  it("the listener counts in Redis and successive answers come from different instances", async () => {
    const answers: { count: number; instanceId: string }[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await request(`http://127.0.0.1:${port}/`);
      assert.equal(res.statusCode, 200);
      answers.push((await res.body.json()) as { count: number; instanceId: string });
    }
    for (let i = 1; i < answers.length; i++) {
      assert.equal(answers[i]?.count, (answers[i - 1]?.count ?? 0) + 1);
    }
    // Round robin, shared with the DNS health check's requests: every instance answers, and no
    // instance answers more than two in a row.
    const s = await polledStatus();
    assert.deepEqual(new Set(answers.map((a) => a.instanceId)), new Set(s.instances.map((i) => i.id)));
    for (let i = 2; i < answers.length; i++) {
      const run = new Set([answers[i]?.instanceId, answers[i - 1]?.instanceId, answers[i - 2]?.instanceId]);
      assert.ok(run.size > 1, "three answers in a row from one instance");
    }
  });

  for (const signal of ["KILL", "TERM"] as const) {
    it(`drill kill-instance --signal ${signal}: no failed request, a healthy replacement, a continuous counter`, async () => {
      const before = await polledStatus();
      // With TERM, the instance is named (--instance); with KILL, the drill picks one at random.
      const named = signal === "TERM" ? before.instances.filter((i) => i.healthy).at(-1)?.id : undefined;
      const drill = await runCli(
        [
          ...["drill", "kill-instance", "--signal", signal, "--json", "--rate", "100", ...common()],
          ...(named ? ["--instance", named] : []),
        ],
        {
          timeoutMs: 60_000,
        },
      );
      assert.equal(drill.code, 0, drill.stderr + drill.stdout);
      const report = JSON.parse(drill.stdout) as DrillReport & {
        victim: { id: string; pid: number };
        replacement: { id: string } | null;
      };
      assert.equal(report.drill, "kill-instance");
      assert.ok(report.requests >= 200, `steady traffic at 100/s for 2 s or more, got ${report.requests}`);
      assert.equal(report.failed, 0, JSON.stringify(report.failures));
      assert.equal(report.counterContinuous, true);
      assert.equal(typeof report.recoverySeconds, "number", "the replacement became healthy");
      assert.ok(report.replacement);
      assert.ok(before.instances.some((i) => i.id === report.victim.id));
      if (named) assert.equal(report.victim.id, named, "the instance --instance named");
      assert.equal(isAlive(report.victim.pid), false, "the victim is gone");
      // Capacity back: as many healthy instances as the group wants. Its wish is read with them, not
      // from before the drill: on a loaded machine target tracking may have scaled it meanwhile.
      const afterwards = await waitFor(
        "as many healthy instances as the group's desired capacity",
        async () => {
          const s = await polledStatus();
          return s.instances.filter((i) => i.healthy).length === s.group.desired ? s : undefined;
        },
        60_000,
      );
      assert.ok(afterwards.instances.some((i) => i.id === report.replacement?.id && i.healthy));
    });
  }

  it("drill az-outage: a whole zone lost at once, no failed request, capacity back in the other zones", async () => {
    const drill = await runCli(
      ["drill", "az-outage", "--json", "--rate", "100", ...shortPhases, ...common()],
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal(drill.code, 0, drill.stderr + drill.stdout);
    const report = JSON.parse(drill.stdout) as DrillReport & {
      az: string;
      instancesLost: number;
      launchedInImpairedAz: number;
      zonesAfter: string[];
    };
    assert.equal(report.drill, "az-outage");
    assert.ok(report.instancesLost >= 1);
    assert.equal(report.failed, 0, JSON.stringify(report.failures));
    assert.equal(report.counterContinuous, true);
    assert.equal(typeof report.recoverySeconds, "number");
    assert.equal(report.launchedInImpairedAz, 0, "nothing launches in the zone that is down");
    assert.ok(!report.zonesAfter.includes(report.az));
    assertNoRegionFailover(report);
    const s = await polledStatus();
    assert.equal(s.instances.filter((i) => i.healthy).length, s.group.desired);
  });

  it("drill az-outage in the Redis primary's zone: its node goes with the zone and Sentinel fails it over, no failed request", async () => {
    const before = await polledStatus();
    const primary = before.redis.nodes?.find((n) => n.role === "primary");
    assert.ok(primary, JSON.stringify(before.redis));
    const drill = await runCli(
      ["drill", "az-outage", "--az", primary.az, "--json", "--rate", "100", ...shortPhases, ...common()],
      { timeoutMs: 90_000 },
    );
    assert.equal(drill.code, 0, drill.stderr + drill.stdout);
    const report = JSON.parse(drill.stdout) as DrillReport & { az: string; redisNodesLost: string[] };
    assert.equal(report.az, primary.az);
    assert.deepEqual(report.redisNodesLost, [`${primary.name} (primary)`]);
    assert.equal(report.failed, 0, JSON.stringify(report.failures));
    assert.equal(report.counterContinuous, true, JSON.stringify(report.counterViolations));
    assertNoRegionFailover(report);
    const failover = report.events.find((e) => e.type === "redis.failover");
    assert.ok(failover, "Sentinel promoted a replica in another zone");
    // The zone back: its node continues and is made a replica of the new primary.
    const after = await waitFor(
      "the zone's node back as a replica, the primary elsewhere",
      async () => {
        const s = await polledStatus();
        const back = s.redis.nodes?.find((n) => n.name === primary.name);
        const now = s.redis.nodes?.find((n) => n.role === "primary");
        return back?.role === "replica" && now && now.az !== primary.az ? s : undefined;
      },
      60_000,
    );
    assert.equal(after.redis.nodes?.filter((n) => n.role === "primary").length, 1);
  });

  // cpu-spike runs in cpu-spike-under-load.test.ts, in the runner's `alone` group: its CPU load
  // beside other suites made its figures depend on them (header timeouts under a load average of 15).

  it("drill redis-failover: a replica is promoted, no request fails, the count never goes back", async () => {
    const drill = await runCli(
      ["drill", "redis-failover", "--json", "--rate", "100", ...shortPhases, ...common()],
      {
        timeoutMs: 90_000,
      },
    );
    assert.equal(drill.code, 0, drill.stderr + drill.stdout);
    const report = JSON.parse(drill.stdout) as DrillReport & {
      writeOutageSeconds: number;
      killedPrimary: { az: string };
      newPrimary: { az: string } | null;
      oldPrimaryRejoinedAsReplica: boolean;
    };
    assert.equal(report.drill, "redis-failover");
    assert.equal(typeof report.recoverySeconds, "number", "the Sentinel promoted the replica");
    assert.ok(
      report.newPrimary && report.newPrimary.az !== report.killedPrimary.az,
      "primary and replica in different AZs",
    );
    assert.equal(report.failed, 0, JSON.stringify(report.failures));
    assert.equal(report.acknowledgedLost, 0);
    assert.equal(report.counterContinuous, true, JSON.stringify(report.counterViolations));
    assert.equal(report.oldPrimaryRejoinedAsReplica, true);
    // A recovery inside the region, within its budget: the region is never called down.
    assertNoRegionFailover(report);
    // Instances followed the failover without a restart.
    const s = await polledStatus();
    assert.ok(s.instances.every((i) => isAlive(i.pid)));
    const res = await request(`http://127.0.0.1:${port}/`);
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  });

  it("drill region-outage (redis.crossRegion none): DNS fails over and back; the count's reset is reported", async () => {
    const drill = await runCli(["drill", "region-outage", "--json", "--rate", "100", ...common()], {
      timeoutMs: 120_000,
    });
    assert.equal(drill.code, 0, drill.stderr + drill.stdout);
    const report = JSON.parse(drill.stdout) as DrillReport & {
      outageSeconds: number;
      regionDetectionSeconds: number;
      inRegionBudgetSeconds: number;
      ttlSeconds: number;
      phases: RegionOutagePhases;
      failureWindows: { fromSeconds: number; toSeconds: number }[];
      secondaryStartedByAlarm: boolean;
      failedBack: boolean;
      secondaryBackToStandby: boolean;
      notifications: string[];
      resolvedAddresses: string[];
      crossRegion: string;
      countWentBackBy: number;
      acknowledgedLostOnFailover: number | null;
      countsByRegion: { phase: string; first: number; last: number }[];
    };
    assert.equal(report.drill, "region-outage");
    assert.deepEqual(
      report.resolvedAddresses,
      ["127.0.0.1", "127.0.0.2", "127.0.0.1"],
      "clients followed DNS",
    );
    // Detection (8 failed checks × 1 s, at least 7 s: past the 6.5 s a Sentinel failover may take) + TTL + the
    // pilot light's start, not a fixed 5 s: the region is given its in-region budget first.
    assert.ok(
      report.outageSeconds <= report.regionDetectionSeconds + report.ttlSeconds + 5,
      `clients saw failures for ${report.outageSeconds} s`,
    );
    assert.ok(report.regionDetectionSeconds > report.inRegionBudgetSeconds);
    const p = report.phases;
    assert.ok(
      p.detectionSeconds !== null && p.detectionSeconds >= report.inRegionBudgetSeconds,
      JSON.stringify(p),
    );
    // No check on the SECONDARY: DNS answers it when the primary is called down, not after its boot.
    assert.equal(p.dnsSeconds, p.detectionSeconds, JSON.stringify(p));
    assert.ok(
      p.alarmSeconds !== null && p.standbyStartSeconds !== null && p.standbyStartSeconds >= p.alarmSeconds,
    );
    // Failure windows in seconds from the start of the traffic, as the timeline (issue 25 item 6).
    const faultSeconds = report.timeline.fault?.seconds ?? Number.NaN;
    assert.ok(
      report.failureWindows.every((w) => w.fromSeconds >= faultSeconds - 0.5),
      JSON.stringify(report.failureWindows),
    );
    assert.equal(report.secondaryStartedByAlarm, true);
    assert.equal(report.failedBack, true);
    assert.equal(report.secondaryBackToStandby, true);
    assert.equal(report.notifications.length, 2);
    assert.match(report.notifications[0] ?? "", /failover: eu-west-3 → us-east-1/);
    assert.match(report.notifications[1] ?? "", /failback: us-east-1 → eu-west-3/);
    // Each region its own Redis, nothing crossing: the secondary counts from its own copy (empty
    // here: this stack's secondary never served before), so the count went back, by as much as
    // the primary had counted, and the report says so.
    assert.equal(report.crossRegion, "none");
    assert.equal(report.counterContinuous, false);
    const [primaryPhase, secondaryPhase] = report.countsByRegion;
    assert.equal(primaryPhase?.phase, "primary");
    assert.equal(secondaryPhase?.phase, "secondary");
    assert.ok(
      report.countWentBackBy > 0 &&
        report.countWentBackBy >= (primaryPhase?.last ?? 0) - (secondaryPhase?.first ?? 0),
    );
    assert.ok((report.acknowledgedLostOnFailover ?? 0) > 0, "the primary's counts are not in the secondary");
    const s = await polledStatus();
    assert.equal(s.redis.crossRegion?.mode, "none");
    assert.notEqual(s.redis.secondary?.url, s.redis.url, "each region its own Redis");
    assert.equal(s.dns?.answer, "127.0.0.1");
    assert.equal(s.regions.find((r) => r.role === "secondary")?.instances.length, 0, "pilot light again");
  });

  it("every instance frozen at once: held as overload, none replaced; they serve again once they recover", async () => {
    const before = await polledStatus();
    const pids = before.instances.map((i) => i.pid);
    const logFile = path.join(stateDir, "stack.log");
    for (const pid of pids) process.kill(pid, "SIGSTOP");
    try {
      await waitFor(
        "the group says why it keeps them",
        () =>
          /overload, not a broken instance; not replaced/.test(readFileSync(logFile, "utf8")) || undefined,
        30_000,
      );
      const during = await polledStatus();
      assert.deepEqual(
        during.instances.map((i) => i.pid).sort(),
        [...pids].sort(),
        "no replacement launched while the whole group is unhealthy",
      );
    } finally {
      for (const pid of pids) if (isAlive(pid)) process.kill(pid, "SIGCONT");
    }
    await waitFor(
      "the same instances healthy again",
      async () => {
        const s = await polledStatus();
        return pids.every((pid) => s.instances.some((i) => i.pid === pid && i.healthy)) || undefined;
      },
      30_000,
    );
  });

  it("one instance frozen while the others are healthy: replaced after the delay, launch before terminate", async () => {
    const logFrom = readFileSync(path.join(stateDir, "stack.log"), "utf8").length;
    const before = await polledStatus();
    const victim = before.instances.find((i) => i.healthy);
    assert.ok(victim);
    process.kill(victim.pid, "SIGSTOP");
    try {
      await waitFor(
        "a replacement healthy and the frozen instance gone",
        async () => {
          const s = await polledStatus();
          const fresh = s.instances.filter(
            (i) => i.healthy && !before.instances.some((b) => b.pid === i.pid),
          );
          return (fresh.length >= 1 && !isAlive(victim.pid)) || undefined;
        },
        // The frozen instance drains for up to the deregistration delay, then SIGTERM, then SIGKILL.
        120_000,
      );
    } finally {
      if (isAlive(victim.pid)) process.kill(victim.pid, "SIGCONT");
    }
    // This test's part of the log: instances of earlier tests are not "fresh".
    const log = readFileSync(path.join(stateDir, "stack.log"), "utf8").slice(logFrom);
    const at = (pattern: string) => log.search(new RegExp(pattern));
    // Replaced, or (on a machine so busy that every instance's checks time out together, which the
    // group reads as overload and holds replacements for) scaled in once fresh instances serve:
    // either way the frozen instance leaves only after a fresh one is healthy.
    const replaced = at(
      `instance\\.terminating\\s+\\[[^\\]]+\\] ${victim.id} in \\S+: replaced by i-\\w+, now healthy`,
    );
    const scaledIn = at(`instance\\.terminating\\s+\\[[^\\]]+\\] ${victim.id} in \\S+: scale in`);
    const terminating = replaced >= 0 ? replaced : scaledIn;
    assert.ok(terminating >= 0, `the frozen instance ${victim.id} was replaced or scaled in:\n${log}`);
    if (replaced >= 0) assert.match(log, new RegExp(`instance\\.replaced\\s+\\[[^\\]]+\\] ${victim.id} →`));
    else
      assert.match(
        log,
        new RegExp(`instance\\.replacement-held\\s+\\[[^\\]]+\\] ${victim.id} `),
        "held as overload first",
      );
    // By the log's clock: the group can act on a target's health in the same millisecond, before
    // that target's own event is written.
    const timeAt = (index: number) => log.slice(log.lastIndexOf("\n", index) + 1).slice(0, 12);
    const freshHealthy = [...log.matchAll(/target\.healthy\s+\[[^\]]+\] (i-\w+)/g)].find(
      (m) => !before.instances.some((b) => b.id === m[1]) && timeAt(m.index ?? 0) <= timeAt(terminating),
    );
    assert.ok(
      freshHealthy,
      `launch before terminate: a fresh instance healthy before ${victim.id} left:\n${log}`,
    );
  });

  it("a second stack on the same listener port fails clearly and starts nothing", async () => {
    const otherRedisPort = await findFreePort();
    const other = await runCli(
      [
        "up",
        "--port",
        String(port),
        "--redis-port",
        String(otherRedisPort),
        "--config",
        configPath,
        "--state-dir",
        path.join(dir, "other"),
      ],
      { cwd: dir },
    );
    assert.equal(other.code, 1);
    assert.match(
      other.stderr,
      new RegExp(`load balancer: port ${port} on 127\\.0\\.0\\.1 is already in use`),
    );
    assert.match(other.stderr, /fix: pass --port/);
    await assertPortFree("127.0.0.1", otherRedisPort, "redis", "");
  });

  it("up refuses to start twice from one state directory", async () => {
    const again = await runCli(["up", ...common()], { cwd: dir });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already running/);
  });

  it("down stops everything; up again continues the count (Redis persistence)", async () => {
    const s = await polledStatus();
    const last = ((await (await request(`http://127.0.0.1:${port}/`)).body.json()) as { count: number })
      .count;
    const down = await runCli(["down", "--state-dir", stateDir]);
    assert.equal(down.code, 0, down.stderr);
    await waitFor(
      "every process gone",
      () => (!isAlive(s.pid) && s.instances.every((i) => !isAlive(i.pid))) || undefined,
    );
    assert.ok(s.redis.pid && !isAlive(s.redis.pid), "redis-server stopped");
    const gone = await runCli(["status", "--state-dir", stateDir]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no stack is running/);

    const up = await runCli(["up", "--detach", ...ports(), ...common()], {
      cwd: dir,
    });
    assert.equal(up.code, 0, up.stderr);
    const next = ((await (await request(`http://127.0.0.1:${port}/`)).body.json()) as { count: number })
      .count;
    assert.equal(next, last + 1);
  });
});

describe("drill without a running stack", { timeout: 120_000 }, () => {
  it("starts a temporary stack on free ports, drills it and stops it", async () => {
    const dir = tempDir();
    const drill = await runCli(
      // The description with its primary region only: what is tested is the temporary stack's
      // start, drill and stop, not the secondary region (the suite above fails it over).
      ["drill", "kill-instance", "--json", "--rate", "100", ...shortPhases, "--config", oneRegionConfig],
      {
        cwd: dir,
        timeoutMs: 90_000,
      },
    );
    assert.equal(drill.code, 0, drill.stderr);
    const report = JSON.parse(drill.stdout) as DrillReport;
    assert.equal(report.failed, 0);
    assert.equal(report.counterContinuous, true);
    assert.equal(typeof report.recoverySeconds, "number");
  });
});
