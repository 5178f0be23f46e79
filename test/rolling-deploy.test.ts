import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { StackSession } from "../src/cli/stack-session.ts";
import { rollingDeployDrill } from "../src/drills/rolling-deploy.ts";
import { SteadyTraffic } from "../src/drills/traffic.ts";
import { loadStack, resolveStack, validateStack } from "../src/stack/index.ts";
import { repoRoot } from "./helpers.ts";
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
});
