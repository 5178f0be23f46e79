import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { StackSession } from "../src/cli/stack-session.ts";
import { rollingDeployDrill } from "../src/drills/rolling-deploy.ts";
import { loadStack } from "../src/stack/index.ts";
import { configPath } from "./helpers.ts";

const versionServing = async (listener: string): Promise<string> => {
  const res = await request(`${listener}/`, { reset: true });
  return ((await res.body.json()) as { version: string }).version;
};

describe("rolling deploy on real processes and a real redis-server", () => {
  let session: StackSession;
  before(async () => {
    session = await StackSession.temporary(await loadStack(configPath, "dev"));
  });
  after(async () => {
    await session?.stop();
  });

  it("rolls a new version under 200 requests/s: 0 failed, every instance replaced, the count continuous", async () => {
    const before = await session.client.status();
    const inService = before.instances.filter((i) => i.healthy).map((i) => i.id);
    const oldVersion = await versionServing(before.listener);
    const report = await rollingDeployDrill(session.client, { rate: 200 });
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
      const report = await rollingDeployDrill(session.client, { rate: 200, broken });
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
