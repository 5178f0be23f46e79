import assert from "node:assert/strict";
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { bundleWebService, bundleWebServiceSync } from "../src/web-service/bundle.ts";
import { tempDir } from "./helpers.ts";

const files = (dir: string) =>
  Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f), "utf8")]));

describe("the web service's bundle cache", () => {
  let saved: string | undefined;
  let cache: string;
  beforeEach(() => {
    saved = process.env.STAYUP_WEB_SERVICE_CACHE;
    cache = tempDir("stayup-bundle-cache-");
    process.env.STAYUP_WEB_SERVICE_CACHE = cache;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.STAYUP_WEB_SERVICE_CACHE;
    else process.env.STAYUP_WEB_SERVICE_CACHE = saved;
  });

  it("gives what esbuild writes, byte for byte, into any folder (source maps included)", async () => {
    const root = tempDir("stayup-bundles-");
    await bundleWebService(path.join(root, "first"), { codeCache: true });
    await bundleWebService(path.join(root, "a", "b", "copy"), { codeCache: true });
    process.env.STAYUP_WEB_SERVICE_CACHE = "off";
    await bundleWebService(path.join(root, "a", "b", "fresh"), { codeCache: true });
    const copy = files(path.join(root, "a", "b", "copy"));
    assert.deepEqual(Object.keys(copy).sort(), [
      "web-service-start.cjs",
      "web-service.cjs",
      "web-service.cjs.map",
      "web-service.mjs",
      "web-service.mjs.map",
    ]);
    assert.deepEqual(copy, files(path.join(root, "a", "b", "fresh")));
  });

  it("is reused while every file the build read is unchanged, and built again once one is not", () => {
    const root = tempDir("stayup-bundles-");
    bundleWebServiceSync(path.join(root, "first"));
    const [entry] = readdirSync(cache);
    assert.ok(entry, "one cache entry");
    const entryFile = path.join(cache, entry, "entry.json");
    // Marked in the cache: a copy that carries the mark came from it.
    const cached = path.join(cache, entry, "web-service.mjs");
    writeFileSync(cached, `${readFileSync(cached, "utf8")}\n// from the cache\n`);
    bundleWebServiceSync(path.join(root, "reused"));
    assert.match(readFileSync(path.join(root, "reused", "web-service.mjs"), "utf8"), /from the cache/);

    // One input (the service's entry) said to have changed since.
    const recorded = JSON.parse(readFileSync(entryFile, "utf8")) as { inputs: Record<string, string> };
    const input = Object.keys(recorded.inputs).find((f) =>
      f.endsWith(path.join("src", "web-service", "main.ts")),
    );
    assert.ok(input, "the service's entry is among the recorded inputs");
    recorded.inputs[input] = "0".repeat(64);
    writeFileSync(entryFile, JSON.stringify(recorded));
    bundleWebServiceSync(path.join(root, "rebuilt"));
    assert.doesNotMatch(
      readFileSync(path.join(root, "rebuilt", "web-service.mjs"), "utf8"),
      /from the cache/,
    );
    assert.doesNotMatch(readFileSync(path.join(cache, entry, "web-service.mjs"), "utf8"), /from the cache/);
  });
});

describe("the web service's bundle cache and file modes", () => {
  it("a reused bundle's files take the caller's umask, not the cache's modes (a state folder is private)", () => {
    const saved = process.env.STAYUP_WEB_SERVICE_CACHE;
    const cache = tempDir("stayup-bundle-cache-");
    process.env.STAYUP_WEB_SERVICE_CACHE = cache;
    const before = process.umask(0o022);
    try {
      const root = tempDir("stayup-bundles-");
      bundleWebServiceSync(path.join(root, "first"));
      const [entry] = readdirSync(cache);
      assert.ok(entry, "one cache entry");
      for (const f of readdirSync(path.join(cache, entry))) chmodSync(path.join(cache, entry, f), 0o644);
      process.umask(0o077);
      bundleWebServiceSync(path.join(root, "private"));
      const modes = readdirSync(path.join(root, "private")).map(
        (f) => `${f} ${(statSync(path.join(root, "private", f)).mode & 0o777).toString(8)}`,
      );
      assert.ok(modes.length > 0);
      assert.deepEqual(
        modes.filter((m) => !m.endsWith(" 600")),
        [],
        "every file readable by its owner only",
      );
    } finally {
      process.umask(before);
      if (saved === undefined) delete process.env.STAYUP_WEB_SERVICE_CACHE;
      else process.env.STAYUP_WEB_SERVICE_CACHE = saved;
    }
  });
});

describe("the web service's bundle, into a relative folder", () => {
  it("is written under the caller's folder, not the package's (a packed install's `up` in .stayup/build)", async () => {
    const saved = process.cwd();
    const root = tempDir("stayup-bundles-");
    try {
      process.chdir(root);
      await bundleWebService(path.join(".stayup", "build"));
      bundleWebServiceSync(path.join(".stayup", "aws-bundle"));
    } finally {
      process.chdir(saved);
    }
    assert.ok(readdirSync(path.join(root, ".stayup", "build")).includes("web-service.mjs"));
    assert.ok(readdirSync(path.join(root, ".stayup", "aws-bundle")).includes("web-service.mjs"));
  });
});
