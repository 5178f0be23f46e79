/**
 * `stayup ci plan --compare-deployed`: the CI stack deployed in moto_server compared with the one
 * the description makes now (CloudFormation GetTemplate): equal right after bootstrap; a topology
 * switch (new permissions for the image repository) and an added region (new bootstrap roles) are
 * named, with the environments whose roles no longer fit.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { ciStackDrift, describeDrift, synthesizeCi } from "../src/aws/ci/ci-app.ts";
import { resolveStack, type StackDescription, validateStack } from "../src/stack/index.ts";
import { tempDir } from "./helpers.ts";
import { createStack, type Moto, startMoto, type Template, updateStack } from "./moto.ts";

async function descriptions(change?: (d: StackDescription) => void) {
  const input = structuredClone((await import("../stayup.config.ts")).default);
  input.ci = {
    github: { owner: "octo-org", repository: "stayup", branch: "main", protectedEnvironments: ["prod"] },
  };
  change?.(input);
  const valid = validateStack(input);
  return { dev: resolveStack(valid, "dev"), prod: resolveStack(valid, "prod") };
}

describe("stayup ci plan --compare-deployed (moto_server)", { timeout: 120_000 }, () => {
  let moto: Moto | undefined;
  let cfn: CloudFormationClient;
  before(async () => {
    moto = await startMoto(["eu-west-3"]);
    cfn = new CloudFormationClient(moto.clientConfig());
  });
  after(() => moto?.stop());

  it("not deployed, then equal after bootstrap, then a topology switch names the roles that changed", async () => {
    const first = synthesizeCi(await descriptions(), path.join(tempDir("stayup-ci-"), "ci"));
    const missing = await ciStackDrift(first, cfn);
    assert.deepEqual(missing, { stackName: "stayup-ci", deployed: false, differences: [], environments: [] });
    assert.match(
      describeDrift(missing, first).lines.join("\n"),
      /stayup-ci is not deployed: stayup ci bootstrap/,
    );
    await createStack(cfn, first.stackName, JSON.parse(readFileSync(first.templateFile, "utf8")) as Template);
    const same = await ciStackDrift(first, cfn);
    assert.deepEqual(same, { stackName: "stayup-ci", deployed: true, differences: [], environments: [] });
    assert.equal(describeDrift(same, first).ok, true);
    const switched = synthesizeCi(
      await descriptions((d) => void (d.topology = "ecs")),
      path.join(tempDir("stayup-ci-"), "ci"),
    );
    const drift = await ciStackDrift(switched, cfn);
    assert.equal(drift.deployed, true);
    assert.ok(drift.differences.length > 0);
    assert.ok(
      drift.differences.some((id) => /DeployRoledev/i.test(id)) &&
        drift.differences.some((id) => /DeployRoleprod/i.test(id)),
      drift.differences.join(", "),
    );
    assert.deepEqual(drift.environments, ["dev", "prod"]);
    const verdict = describeDrift(drift, switched);
    assert.equal(verdict.ok, false);
    assert.match(verdict.lines.join("\n"), /deploy roles of dev, prod .* AccessDenied/);
    assert.match(verdict.lines.join("\n"), /stayup ci bootstrap/);
  });

  it("a region added to one environment names that environment's role only", async () => {
    const oneRegion = (d: StackDescription) => void (d.regions.secondary = undefined);
    const before = synthesizeCi(await descriptions(oneRegion), path.join(tempDir("stayup-ci-"), "ci"));
    await updateStack(cfn, "stayup-ci", JSON.parse(readFileSync(before.templateFile, "utf8")) as Template);
    assert.deepEqual((await ciStackDrift(before, cfn)).differences, []);
    // prod gains a secondary region (regions of its own); dev keeps its one.
    const after = synthesizeCi(
      await descriptions((d) => {
        d.environments.prod.regions = structuredClone(d.regions);
        oneRegion(d);
      }),
      path.join(tempDir("stayup-ci-"), "ci"),
    );
    const drift = await ciStackDrift(after, cfn);
    assert.deepEqual(drift.environments, ["prod"], drift.differences.join(", "));
    assert.match(describeDrift(drift, after).lines[0] ?? "", /deploy roles of prod /);
  });
});
