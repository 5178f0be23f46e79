/**
 * bin/prebuilt.mjs: stayup runs from a bundle of its sources, rebuilt when they change, and says
 * the same as the sources run through tsx.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
// @ts-expect-error bin/prebuilt.mjs is plain JavaScript (it runs before any TypeScript loader).
import { sourcesKey } from "../bin/prebuilt.mjs";
import { repoRoot, runCli, tempDir } from "./helpers.ts";

const keyOf = sourcesKey as (root?: string) => string;

describe("stayup runs from a bundle of its sources (bin/prebuilt.mjs)", () => {
  it("the bundle's key changes with a source's content, a new source and package.json", () => {
    const root = tempDir();
    mkdirSync(path.join(root, "src", "cli"), { recursive: true });
    writeFileSync(path.join(root, "package.json"), '{"version":"1.0.0"}');
    const source = path.join(root, "src", "cli", "main.ts");
    writeFileSync(source, "export const a = 1;\n");
    const first = keyOf(root);
    assert.equal(keyOf(root), first, "the same sources, the same key");

    writeFileSync(source, "export const a = 2;\n");
    utimesSync(source, new Date(2000, 0, 1), new Date(2000, 0, 1));
    const edited = keyOf(root);
    assert.notEqual(edited, first, "an edited source");

    writeFileSync(path.join(root, "src", "cli", "other.ts"), "");
    const added = keyOf(root);
    assert.notEqual(added, edited, "an added source");

    writeFileSync(path.join(root, "package.json"), '{"version":"1.0.1"}');
    assert.notEqual(keyOf(root), added, "package.json");
  });

  it("the same sources copied elsewhere get their own bundle (it holds their paths)", () => {
    const a = tempDir();
    const b = tempDir();
    for (const root of [a, b]) {
      mkdirSync(path.join(root, "src"));
      writeFileSync(path.join(root, "package.json"), "{}");
    }
    assert.notEqual(keyOf(a), keyOf(b));
  });

  it("answers as the sources do through tsx, and several first starts at once share one bundle", async () => {
    // Inside the package, as the bundle's imports of dependencies must find node_modules.
    const caches = path.join(repoRoot, "node_modules", ".cache");
    mkdirSync(caches, { recursive: true });
    const cache = mkdtempSync(path.join(caches, "stayup-cli-test-"));
    after(() => rmSync(cache, { recursive: true, force: true }));
    const env = { ...process.env, STAYUP_CLI_CACHE: cache };
    const stateDir = path.join(tempDir(), ".stayup");
    const runs = await Promise.all(
      Array.from({ length: 4 }, () => runCli(["status", "--state-dir", stateDir], { env })),
    );
    const throughTsx = await runCli(["status", "--state-dir", stateDir], {
      env: { ...process.env, STAYUP_PREBUILT: "0" },
    });
    assert.equal(throughTsx.code, 1, throughTsx.stderr);
    for (const run of runs) {
      assert.equal(run.code, throughTsx.code);
      assert.equal(run.stderr, throughTsx.stderr);
      assert.equal(run.stdout, throughTsx.stdout);
    }
    assert.deepEqual(readdirSync(cache), [keyOf(repoRoot)], "one whole bundle, no half-built folder left");

    const help = await runCli(["drill", "--help"], { env });
    const helpThroughTsx = await runCli(["drill", "--help"], {
      env: { ...process.env, STAYUP_PREBUILT: "0" },
    });
    assert.equal(help.code, 0, help.stderr);
    assert.equal(help.stdout, helpThroughTsx.stdout);
  });

  it("a folder it cannot write to: runs through tsx, and says why with STAYUP_DEBUG", async () => {
    const readOnly = path.join(tempDir(), "cache");
    // A file where the cache folder would be: mkdir fails whoever runs the test (root included).
    writeFileSync(readOnly, "");
    const run = await runCli(["--version"], {
      env: { ...process.env, STAYUP_CLI_CACHE: path.join(readOnly, "stayup-cli"), STAYUP_DEBUG: "1" },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^\d+\.\d+\.\d+/);
    assert.match(run.stderr, /running through tsx \(.*ENOTDIR/);
  });
});
