/**
 * `stayup ci plan --compare-deployed`: the CI stack deployed in moto_server compared with the one
 * the description makes now (CloudFormation GetTemplate): equal right after bootstrap; a topology
 * switch (new permissions for the image repository) is named.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { ciStackDrift, synthesizeCi } from "../src/aws/ci/ci-app.ts";
import { resolveStack, type StackDescription, validateStack } from "../src/stack/index.ts";
import { tempDir } from "./helpers.ts";
import { createStack, type Moto, startMoto, type Template } from "./moto.ts";

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
    assert.deepEqual(await ciStackDrift(first, cfn), {
      stackName: "stayup-ci",
      deployed: false,
      differences: [],
    });
    await createStack(cfn, first.stackName, JSON.parse(readFileSync(first.templateFile, "utf8")) as Template);
    assert.deepEqual(await ciStackDrift(first, cfn), {
      stackName: "stayup-ci",
      deployed: true,
      differences: [],
    });
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
  });
});
