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
      "GIT_SHA",
      "DEPLOY_ID",
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
      "ENV",
      "PYTHONSTARTUP",
      "PERLLIB",
      "RUBYLIB",
      "LUA_INIT",
      "PHPRC",
      "DOTNET_STARTUP_HOOKS",
      "GOFLAGS",
      "OPENSSL_CONF",
    ]) {
      const problem = instanceSettingProblem(name, "x");
      assert.match(problem ?? "", new RegExp(`^${name} cannot be an instance setting: .*load`), name);
      // The fix: where a change of how instances start belongs.
      assert.match(problem ?? "", /webService\.start's command in stayup\.config\.ts/, name);
    }
  });

  it("refuses what makes the start command's tool run another program (npm start, make, git)", () => {
    for (const name of [
      "NPM_CONFIG_SCRIPT_SHELL",
      "NPM_CONFIG_NODE_OPTIONS",
      "YARN_RC_FILENAME",
      "MAKEFLAGS",
      "GIT_SSH_COMMAND",
      "GIT_CONFIG_GLOBAL",
      "XDG_CONFIG_HOME",
      "SHELL",
      "EDITOR",
    ]) {
      assert.match(
        instanceSettingProblem(name, "x") ?? "",
        new RegExp(`^${name} cannot be an instance setting: .*(run|load)`),
        name,
      );
    }
  });

  it("names outside the allow rule are not settings (npm reads npm_config_* in any case)", () => {
    for (const name of ["npm_config_script_shell", "http_proxy", "Node_Options", "_JAVA_OPTIONS"]) {
      assert.match(instanceSettingProblem(name, "x") ?? "", /is not a setting name/, name);
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
      "REDIS_URL",
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
