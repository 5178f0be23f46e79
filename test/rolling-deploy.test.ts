import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { StackSession } from "../src/cli/stack-session.ts";
import { rollingDeployDrill } from "../src/drills/rolling-deploy.ts";
import { SteadyTraffic } from "../src/drills/traffic.ts";
import { loadStack, resolveStack, validateStack } from "../src/stack/index.ts";
import { configPath, repoRoot } from "./helpers.ts";
import path from "node:path";

const oneRegionConfig = path.join(repoRoot, "test/fixtures/one-region.config.ts");

const versionServing = async (listener: string): Promise<string> => {
  const res = await request(`${listener}/`, { reset: true });
  return ((await res.body.json()) as { version: string }).version;
};

describe("rolling deploy on real processes and a real redis-server", () => {
  let session: StackSession;
  before(async () => {
    // Its primary region only: these rolls touch no other (the warm standby's roll is the next suite's).
    session = await StackSession.temporary(await loadStack(oneRegionConfig, "dev"));
  });
  after(async () => {
    await session?.stop();
  });

  it("rolls a new version under 100 requests/s: 0 failed, every instance replaced, the count continuous", async () => {
    const before = await session.client.status();
    const inService = before.instances.filter((i) => i.healthy).map((i) => i.id);
    const oldVersion = await versionServing(before.listener);
    const report = await rollingDeployDrill(session.client, { rate: 100 });
    assert.equal(report.failed, 0, JSON.stringify(report.failures));
    assert.equal(report.counterContinuous, true);
    assert.equal(report.rolledBack, false);
    assert.equal(report.instancesReplaced, inService.length);
    const afterRoll = await session.client.status();
    for (const id of inService) assert.ok(!afterRoll.instances.some((i) => i.id === id), `${id} still runs`);
    const newVersion = await versionServing(afterRoll.listener);
    assert.notEqual(newVersion, oldVersion);
    assert.equal(newVersion, report.toVersion);
  });

  for (const broken of ["crash", "unhealthy"] as const) {
    it(`a new version that ${broken === "crash" ? "crashes" : "never turns healthy"} is rolled back with nothing failed for clients`, async () => {
      const before = await session.client.status();
      const serving = await versionServing(before.listener);
      const report = await rollingDeployDrill(session.client, { rate: 100, broken });
      assert.equal(report.rolledBack, true);
      assert.equal(report.failed, 0, JSON.stringify(report.failures));
      assert.equal(report.counterContinuous, true);
      assert.equal(report.instancesReplaced, 0);
      assert.equal(await versionServing(before.listener), serving, "the old version still serves");
      const now = await session.client.status();
      assert.deepEqual(
        now.instances
          .filter((i) => i.healthy)
          .map((i) => i.id)
          .sort(),
        before.instances
          .filter((i) => i.healthy)
          .map((i) => i.id)
          .sort(),
        "the old instances kept serving",
      );
    });
  }
});

describe("a roll stopped with rollback (POST /roll/stop) on real processes", () => {
  let session: StackSession;
  before(async () => {
    session = await StackSession.temporary(await loadStack(oneRegionConfig, "dev"));
  });
  after(async () => {
    await session?.stop();
  });

  /** The stack on `version` only: its group, every instance (and what they answer), all healthy. */
  const assertOnVersion = async (version: string, ids?: string[]) => {
    const now = await session.client.status();
    assert.equal(now.version, version);
    assert.deepEqual(
      now.instances.map((i) => [i.version, i.healthy]),
      now.instances.map(() => [version, true]),
    );
    assert.equal(await versionServing(now.listener), version);
    if (ids)
      assert.deepEqual(
        now.instances.map((i) => i.id).sort(),
        [...ids].sort(),
        "the instances found, and only them",
      );
  };

  it("stopped while its new instances start: they go, the instances found keep serving, the result says stopped", async () => {
    const found = await session.client.status();
    assert.ok(found.version);
    // A version that never turns healthy: the roll cannot end before the stop, whatever the timing.
    const since = Date.now();
    const launched = new AbortController();
    const watching = (async () => {
      for await (const e of session.client.events(launched.signal))
        if (
          e.type === "instance.launched" &&
          Date.parse(e.time) >= since &&
          !found.instances.some((i) => i.id === e.instanceId)
        )
          // Ends the stream, and this loop with it (a break would leave its body to error unheard).
          launched.abort();
    })();
    const roll = session.client.roll({ STAYUP_BROKEN: "unhealthy" }, { id: "stop-mid-roll" });
    await watching;
    const stopped = await session.client.stopRoll({ id: "stop-mid-roll", reason: "a test stops it" });
    assert.ok(stopped, "the roll was under way");
    assert.equal(stopped.stopped, true);
    assert.equal(stopped.rolledBack, true);
    assert.equal(stopped.reason, "stopped: a test stops it");
    assert.deepEqual(await roll, stopped, "the roll's own answer is the same result");
    await assertOnVersion(
      found.version,
      found.instances.map((i) => i.id),
    );
    assert.equal(await session.client.stopRoll({ id: "stop-mid-roll" }), undefined, "nothing left to stop");
  });

  it("one roll at a time: another while one is under way is refused, naming it", async () => {
    const found = await session.client.status();
    // Under way once its roll.started event came (the stack holds it from before it bundles).
    const since = Date.now();
    const started = new AbortController();
    const watching = (async () => {
      for await (const e of session.client.events(started.signal))
        if (e.type === "roll.started" && Date.parse(e.time) >= since) started.abort();
    })();
    const first = session.client.roll({ STAYUP_BROKEN: "unhealthy" }, { id: "first" });
    await watching;
    await assert.rejects(
      session.client.roll({ STAYUP_DEPLOY_ID: "second" }),
      /roll refused: a roll is under way \(first, since/,
    );
    const stopped = await session.client.stopRoll({ id: "first" });
    assert.equal(stopped?.stopped, true);
    await first;
    await assertOnVersion(found.version as string);
  });

  it("a completed roll stopped by its id afterwards, nothing rolled since: rolled back launch first, the version found on every instance", async () => {
    const found = await session.client.status();
    const traffic = new SteadyTraffic(found.listener, {
      rate: 100,
      maxDurationMs: 120_000,
      maxRequests: 12_000,
    });
    traffic.start();
    const rolled = await session.client.roll({ STAYUP_DEPLOY_ID: "then-stopped" }, { id: "completed" });
    assert.equal(rolled.rolledBack, false);
    assert.equal((await session.client.status()).version, rolled.toVersion);
    const back = await session.client.stopRoll({ id: "completed", reason: "a test stops it" });
    const result = await traffic.stop();
    assert.ok(back, "the completed roll is rolled back");
    assert.equal(back.stopped, true);
    assert.equal(back.fromVersion, found.version);
    assert.equal(back.reason, "stopped after it completed: a test stops it");
    await assertOnVersion(found.version as string);
    assert.equal(result.failed, 0, JSON.stringify(result.failures));
    assert.equal(await session.client.stopRoll({ id: "completed" }), undefined, "rolled back once");
  });
});

describe("a single instance's roll stopped with rollback", () => {
  let session: StackSession;
  before(async () => {
    session = await StackSession.temporary(
      await loadStack(configPath, "dev", { topology: "single-instance" }),
    );
  });
  after(async () => {
    await session?.stop();
  });

  const assertOnVersion = async (version: string) => {
    const now = await session.client.status();
    assert.equal(now.version, version);
    assert.deepEqual(
      now.instances.map((i) => i.version),
      [version],
    );
    assert.equal(await versionServing(now.listener), version);
  };

  it("stopped while the new version starts: the version found starts again on the volume", async () => {
    const found = (await session.client.status()).version as string;
    const since = Date.now();
    const launched = new AbortController();
    const watching = (async () => {
      for await (const e of session.client.events(launched.signal))
        if (e.type === "roll.started" && Date.parse(e.time) >= since) launched.abort();
    })();
    const roll = session.client.roll({ STAYUP_BROKEN: "unhealthy" }, { id: "single-stop" });
    await watching;
    const stopped = await session.client.stopRoll({ id: "single-stop", reason: "a test stops it" });
    assert.equal(stopped?.stopped, true);
    assert.equal(stopped?.reason, "stopped: a test stops it");
    assert.deepEqual(await roll, stopped);
    await assertOnVersion(found);
  });

  it("a completed roll stopped by its id: the version found back on the volume", async () => {
    const found = (await session.client.status()).version as string;
    const rolled = await session.client.roll({ STAYUP_DEPLOY_ID: "single" }, { id: "single-done" });
    assert.equal(rolled.rolledBack, false);
    await assertOnVersion(rolled.toVersion);
    const back = await session.client.stopRoll({ id: "single-done" });
    assert.equal(back?.stopped, true);
    assert.equal(back?.fromVersion, found);
    await assertOnVersion(found);
  });
});

describe("rolling deploy of a stack whose secondary region runs instances (a warm standby)", () => {
  let session: StackSession;
  before(async () => {
    const input = structuredClone((await import("../stayup.config.ts")).default);
    if (input.regions.secondary) input.regions.secondary.standby = { mode: "warm", warmCapacity: 2 };
    session = await StackSession.temporary(resolveStack(validateStack(input), "dev"));
  });
  after(async () => {
    await session?.stop();
  });

  it("rolls the primary, then the secondary, reports each, and neither region's clients see a failure", async () => {
    const before = await session.client.status();
    const [primary, secondary] = before.regions;
    assert.ok(primary && secondary && secondary.role === "secondary");
    const secondaryIds = secondary.instances.filter((i) => i.healthy).map((i) => i.id);
    assert.equal(secondaryIds.length, 2, "the warm standby runs its two instances");
    const traffic = [primary, secondary].map(
      (r) => new SteadyTraffic(r.listener, { rate: 50, maxDurationMs: 240_000, maxRequests: 12_000 }),
    );
    for (const t of traffic) t.start();
    const roll = await session.client.roll({ STAYUP_DEPLOY_ID: `multi-${Date.now()}` });
    const seen = await Promise.all(traffic.map((t) => t.stop()));
    assert.equal(roll.rolledBack, false, roll.reason);
    assert.deepEqual(
      roll.regions?.map((r) => [r.region, r.role, r.outcome, r.rolledBack]),
      [
        [primary.name, "primary", "rolled", false],
        [secondary.name, "secondary", "rolled", false],
      ],
    );
    const [primaryRoll, secondaryRoll] = roll.regions ?? [];
    assert.equal(primaryRoll?.instancesReplaced.length, primary.instances.filter((i) => i.healthy).length);
    assert.deepEqual(secondaryRoll?.instancesReplaced.slice().sort(), secondaryIds.slice().sort());
    assert.ok(
      (primaryRoll?.durationSeconds ?? 0) + (secondaryRoll?.durationSeconds ?? 0) <=
        roll.durationSeconds + 0.5,
      "one region after the other",
    );
    for (const [i, s] of seen.entries()) {
      assert.equal(s.failed, 0, `${i === 0 ? "primary" : "secondary"}: ${JSON.stringify(s.failures)}`);
      assert.ok(s.requests > 0);
    }
    const afterRoll = await session.client.status();
    for (const region of afterRoll.regions) {
      assert.equal(
        await versionServing(region.listener),
        roll.toVersion,
        `${region.name} serves the new version`,
      );
    }
    assert.ok(
      !afterRoll.regions[1]?.instances.some((i) => secondaryIds.includes(i.id)),
      "the standby was replaced",
    );
  });

  it("stopped while it rolls the secondary: the primary, already rolled, is rolled back too, launch first", async () => {
    const before = await session.client.status();
    const [primary, secondary] = before.regions;
    assert.ok(primary?.version && secondary?.version);
    const traffic = [primary, secondary].map(
      (r) => new SteadyTraffic(r.listener, { rate: 50, maxDurationMs: 240_000, maxRequests: 12_000 }),
    );
    for (const t of traffic) t.start();
    // Stopped once the secondary's step began: the primary's roll completed by then.
    const since = Date.now();
    const reached = new AbortController();
    const watching = (async () => {
      for await (const e of session.client.events(reached.signal))
        if (e.type === "roll.started" && e.region === secondary.name && Date.parse(e.time) >= since)
          reached.abort();
    })();
    const rolling = session.client.roll({ STAYUP_DEPLOY_ID: `stopped-${Date.now()}` }, { id: "two-regions" });
    await watching;
    const stopped = await session.client.stopRoll({ id: "two-regions", reason: "a test stops it" });
    const seen = await Promise.all(traffic.map((t) => t.stop()));
    assert.ok(stopped);
    assert.deepEqual(await rolling, stopped);
    assert.equal(stopped.stopped, true);
    // (Had the secondary's step ended before the stop came, the completed roll is rolled back as a
    // whole: the same end, said "stopped after it completed".)
    assert.deepEqual(
      stopped.regions?.map((r) => [
        r.region,
        r.rolledBack,
        /^stopped( after it completed)?: a test stops it$/.test(r.reason ?? ""),
      ]),
      [
        [primary.name, true, true],
        [secondary.name, true, true],
      ],
    );
    const now = await session.client.status();
    for (const [i, region] of now.regions.entries()) {
      const found = before.regions[i]?.version;
      assert.equal(region.version, found, `${region.name}: the version found`);
      assert.deepEqual(
        region.instances.map((x) => x.version),
        region.instances.map(() => found),
        `${region.name}: every instance on it`,
      );
      assert.equal(await versionServing(region.listener), found);
      assert.equal(seen[i]?.failed, 0, `${region.name}: ${JSON.stringify(seen[i]?.failures)}`);
    }
  });
});
