/**
 * What an instance inherits of the runtime's environment (src/local/instance-environment.ts): a
 * list, not the CLI's whole environment (issue 26: `AWS_*`, tokens and loader variables stay with
 * the CLI).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  inheritedEnvironment,
  inheritedVariables,
  instanceEnvironment,
} from "../src/local/instance-environment.ts";

const cli: NodeJS.ProcessEnv = {
  PATH: "/usr/local/bin:/usr/bin:/bin",
  HOME: "/home/owner",
  LANG: "C.UTF-8",
  LC_ALL: "C.UTF-8",
  LC_TIME: "en_GB.UTF-8",
  TZ: "Europe/Paris",
  TMPDIR: "/tmp",
  NODE_ENV: "production",
  AWS_ACCESS_KEY_ID: "AKIACANARY",
  AWS_SECRET_ACCESS_KEY: "canary",
  AWS_SESSION_TOKEN: "canary",
  AWS_PROFILE: "prod",
  GITHUB_TOKEN: "ghp_canary",
  NPM_TOKEN: "canary",
  SSH_AUTH_SOCK: "/run/user/1000/agent",
  NODE_OPTIONS: "--require /tmp/x.cjs",
  LD_PRELOAD: "/tmp/x.so",
  PYTHONPATH: "/tmp",
  BASH_ENV: "/tmp/x.sh",
  npm_config_script_shell: "/tmp/x.sh",
  STAYUP_UP_LOCK_FROM: "1234",
  DATABASE_URL: "postgres://u:p@db/x",
  UNDEFINED: undefined,
};

describe("an instance's environment", () => {
  it("inherits only the basics a process needs to run and format", () => {
    assert.deepEqual(inheritedEnvironment(cli), {
      PATH: "/usr/local/bin:/usr/bin:/bin",
      HOME: "/home/owner",
      LANG: "C.UTF-8",
      LC_ALL: "C.UTF-8",
      LC_TIME: "en_GB.UTF-8",
      TZ: "Europe/Paris",
      TMPDIR: "/tmp",
      NODE_ENV: "production",
    });
  });

  it("never inherits credentials, tokens, loader variables or the CLI's own", () => {
    const inherited = inheritedEnvironment(cli);
    for (const name of Object.keys(cli)) {
      if ((inheritedVariables as readonly string[]).includes(name) || name.startsWith("LC_")) continue;
      assert.equal(inherited[name], undefined, `${name} is inherited`);
    }
  });

  it("is the inherited basics, then what stayup sets (which wins)", () => {
    const previous = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = "canary-from-process-env";
    try {
      const env = instanceEnvironment({
        PORT: "0",
        STAYUP_INSTANCE_ID: "i-1",
        LOG_LEVEL: "debug",
        TZ: "UTC",
      });
      assert.equal(env.PORT, "0");
      assert.equal(env.STAYUP_INSTANCE_ID, "i-1");
      assert.equal(env.LOG_LEVEL, "debug");
      assert.equal(env.TZ, "UTC");
      assert.equal(env.PATH, process.env.PATH);
      assert.equal(env.AWS_SECRET_ACCESS_KEY, undefined);
    } finally {
      if (previous === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
      else process.env.AWS_SECRET_ACCESS_KEY = previous;
    }
  });
});
