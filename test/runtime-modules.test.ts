/**
 * What the runtime of `up --detach` loads (issue 25, item 12): not the description's validator.
 * zod's modules, loaded once for the description, stayed in the idle runtime's heap for its life;
 * the `up` that starts it validates the description and hands it over (src/cli/commands/up).
 *
 * A real stack: every process of it runs with a module resolve hook (NODE_OPTIONS=--import, which
 * `up` passes to the runtime it starts; instances and Redis get no NODE_OPTIONS), which writes
 * "<pid> <url>" for each module the process resolves. The `up` command itself must be seen loading
 * zod (it validates the description): the hook sees what it must find.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import type { StackStateFile } from "../src/local/control-plane/state-file.ts";
import { runtimeNodeFlags } from "../src/local/node-flags.ts";
import { loadStack } from "../src/stack/index.ts";
import { configPath, repoRoot, runCli, tempDir, upArgs } from "./helpers.ts";

const dir = tempDir("stayup-runtime-modules-");
const stateDir = path.join(dir, ".stayup");
const log = path.join(dir, "resolved.log");

/** Each module a process resolves, as "<pid> <url>" lines in the file STAYUP_TEST_RESOLVED_LOG names. */
const hook = `import { appendFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(process.env.STAYUP_TEST_RESOLVED_LOG, process.pid + " " + result.url + "\\n");
  return result;
}
`;
writeFileSync(path.join(dir, "hook.mjs"), hook);
writeFileSync(
  path.join(dir, "register.mjs"),
  `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(path.join(dir, "hook.mjs")).href)});\n`,
);
const env = {
  ...process.env,
  NODE_OPTIONS: `--import=${pathToFileURL(path.join(dir, "register.mjs")).href}`,
  STAYUP_TEST_RESOLVED_LOG: log,
};

const isZod = (url: string) => /\/node_modules\/zod\//.test(url);

describe("the runtime of up --detach", () => {
  it("`npm start` runs `up` with the runtime's Node flags, as `up --detach` starts it", () => {
    const manifest = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    assert.ok(runtimeNodeFlags.includes("--single-threaded"));
    assert.equal(manifest.scripts.start, `node ${runtimeNodeFlags.join(" ")} bin/stayup.mjs up`);
  });

  it("gets the same description through JSON (the hand-over file) as loaded", async () => {
    const descriptions = [
      configPath,
      ...["active-standby", "cross-region-replica", "one-region"].map((name) =>
        path.join(repoRoot, `test/fixtures/${name}.config.ts`),
      ),
    ];
    for (const file of descriptions) {
      for (const env of ["dev", "prod"] as const) {
        const stack = await loadStack(file, env);
        // Strict: a field set to undefined, a Date or a Map would not come back as it went.
        assert.deepStrictEqual(JSON.parse(JSON.stringify(stack)), stack, `${file} (${env})`);
      }
    }
  });

  after(async () => {
    if (existsSync(path.join(stateDir, "stack.json"))) {
      await runCli(["down", "--state-dir", stateDir], { timeoutMs: 60_000 });
    }
  });

  it("runs the description its `up` validated, without loading zod", async () => {
    const up = await runCli([...upArgs(stateDir), "--detach"], { cwd: dir, env, timeoutMs: 150_000 });
    assert.equal(up.code, 0, `up --detach failed: ${up.stderr}${up.stdout}`);
    const runtimePid = (JSON.parse(readFileSync(path.join(stateDir, "stack.json"), "utf8")) as StackStateFile)
      .pid;
    const lines = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((line) => {
        const space = line.indexOf(" ");
        return { pid: Number(line.slice(0, space)), url: line.slice(space + 1) };
      });
    const runtime = lines.filter((l) => l.pid === runtimePid).map((l) => l.url);
    const others = lines.filter((l) => l.pid !== runtimePid).map((l) => l.url);
    // The hook saw the runtime's modules (its Redis client among them) and the `up` command's zod.
    assert.ok(
      runtime.some((url) => /\/node_modules\/ioredis\//.test(url)),
      `the hook saw the runtime's modules: ${runtime.length} resolved`,
    );
    assert.ok(others.some(isZod), "the `up` that validated the description loaded zod");
    assert.deepEqual(
      runtime.filter(isZod),
      [],
      "the runtime loads none of zod (the description comes validated from `up`)",
    );
    // The hand-over file is read once and removed: the state folder keeps no copy to go stale.
    assert.equal(existsSync(path.join(stateDir, "resolved-stack.json")), false);
  });
});
