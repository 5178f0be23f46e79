import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { DrillReport } from "../src/drills/report.ts";
import { findFreePort } from "../src/shared/net.ts";
import { repoRoot, runCli, tempDir, upDetached } from "./helpers.ts";

const activeConfig = path.join(repoRoot, "test/fixtures/active-standby.config.ts");

/**
 * An active standby (issue 24): the secondary already runs its full capacity, so the failover
 * changes none there. The drill used to wait for a capacity drop that never came, report "not
 * recovered" and run out its traffic before the failback; it must see the secondary serve once DNS
 * answers it, and the failback after the primary's return. One stack, one drill.
 */
describe("region outage with an active standby", { timeout: 400_000 }, () => {
  const dir = tempDir();
  const stateDir = path.join(dir, ".stayup");
  const common = () => ["--config", activeConfig, "--state-dir", stateDir];

  before(async () => {
    await upDetached(stateDir, {
      config: activeConfig,
      cwd: dir,
      dnsPort: await findFreePort(),
    });
  });
  after(async () => {
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("drill region-outage: the secondary seen serving, then the failback", async () => {
    const drill = await runCli(["drill", "region-outage", "--json", "--rate", "100", ...common()], {
      timeoutMs: 200_000,
    });
    const report = JSON.parse(drill.stdout || "{}") as DrillReport & {
      standbyCapacity: number;
      failedBack: boolean;
      secondaryBackToStandby: boolean;
      resolvedAddresses: string[];
    };
    assert.ok(report.standbyCapacity > 0, "an active standby runs instances before the fault");
    assert.notEqual(report.recoverySeconds, null, "the secondary is seen serving");
    assert.equal(report.failedBack, true, "the failback is observed");
    assert.equal(report.secondaryBackToStandby, true);
    assert.deepEqual(report.resolvedAddresses, ["127.0.0.1", "127.0.0.2", "127.0.0.1"]);
  });
});
