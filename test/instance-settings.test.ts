/** What a roll may set (src/local/rolling-deploy/instance-settings.ts): instance settings only. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  instanceSettingProblem,
  instanceSettingsProblems,
} from "../src/local/rolling-deploy/instance-settings.ts";

describe("instance settings a roll may set", () => {
  it("accepts the service's own settings", () => {
    for (const name of [
      "LOG_LEVEL",
      "STAYUP_BROKEN",
      "STAYUP_DEPLOY_ID",
      "STAYUP_SHUTDOWN_TIMEOUT_MS",
      "NODE_ENV",
      "FEATURE_X",
    ]) {
      assert.equal(instanceSettingProblem(name, "1"), undefined, name);
    }
  });

  it("refuses every way of changing how a process loads code, naming the key and why", () => {
    for (const name of [
      "NODE_OPTIONS",
      "NODE_PATH",
      "NODE_EXTRA_CA_CERTS",
      "LD_PRELOAD",
      "LD_LIBRARY_PATH",
      "LD_AUDIT",
      "DYLD_INSERT_LIBRARIES",
      "GCONV_PATH",
      "GLIBC_TUNABLES",
      "PYTHONPATH",
      "PERL5OPT",
      "RUBYOPT",
      "JAVA_TOOL_OPTIONS",
      "BASH_ENV",
      "OPENSSL_CONF",
    ]) {
      const problem = instanceSettingProblem(name, "x");
      assert.match(problem ?? "", new RegExp(`^${name} cannot be an instance setting: .*load`), name);
    }
  });

  it("refuses what stayup sets for an instance: identity, Redis endpoint and password, address, load secret", () => {
    for (const name of [
      "PATH",
      "HOME",
      "HOST",
      "PORT",
      "STAYUP_INSTANCE_ID",
      "STAYUP_VERSION",
      "STAYUP_REDIS_PASSWORD",
      "STAYUP_REDIS_URL",
      "STAYUP_LOAD_SECRET",
    ]) {
      assert.match(
        instanceSettingProblem(name, "x") ?? "",
        new RegExp(`^${name} cannot be an instance setting`),
        name,
      );
    }
  });

  it("refuses names that are not setting names, values that are not short strings", () => {
    assert.match(instanceSettingProblem("log_level", "x") ?? "", /not a setting name/);
    assert.match(instanceSettingProblem("A=B", "x") ?? "", /not a setting name/);
    assert.match(instanceSettingProblem("LOG_LEVEL", 3) ?? "", /must be a string/);
    assert.match(instanceSettingProblem("LOG_LEVEL", "x".repeat(5000)) ?? "", /longer than 4096 bytes/);
    assert.deepEqual(instanceSettingsProblems({ LOG_LEVEL: "debug", LD_PRELOAD: "x" }).length, 1);
  });
});
