import assert from "node:assert/strict";
import { once } from "node:events";
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import vm from "node:vm";
import { request } from "undici";
import {
  bundleWebService,
  codeCacheStarterName,
  instanceEntry,
  webServiceScriptName,
} from "../src/web-service/bundle.ts";
import { codeCacheFile, type CodeCacheOutcome, writeCodeCache } from "../src/web-service/code-cache.ts";
import { type StartedWebService, startWebService, TestRedis, tempDir, waitFor } from "./helpers.ts";

async function stopInstance(started: StartedWebService): Promise<void> {
  if (started.child.exitCode !== null || started.child.signalCode !== null) return;
  started.child.kill("SIGKILL");
  await once(started.child, "exit");
}

async function count(url: string): Promise<Record<string, unknown> & { count: number }> {
  const res = await request(`${url}/`);
  assert.equal(res.statusCode, 200);
  return (await res.body.json()) as Record<string, unknown> & { count: number };
}

describe("web service started from its V8 code cache (real processes, a real redis-server)", () => {
  let dir: string;
  let bundle: string;
  let redis: TestRedis;
  const running: StartedWebService[] = [];
  const cacheOf = () => {
    const script = path.join(dir, webServiceScriptName);
    return codeCacheFile(script, readFileSync(script, "utf8"));
  };
  /** Starts once through the code-cache entry, answers one count, and stops. */
  const startOnce = async (): Promise<{ codeCache?: CodeCacheOutcome; answer: { count: number } }> => {
    const started = await startWebService(instanceEntry(bundle), redis.port);
    running.push(started);
    try {
      return { codeCache: started.codeCache, answer: await count(started.url) };
    } finally {
      await stopInstance(started);
    }
  };
  /** Waits for a start without a usable cache to write one (it does so once it listens). */
  const startAndWriteCache = async () => {
    const before = existsSync(cacheOf()) ? readFileSync(cacheOf()) : Buffer.alloc(0);
    const started = await startWebService(instanceEntry(bundle), redis.port);
    running.push(started);
    await count(started.url);
    await waitFor(
      "a new cache written",
      () => (existsSync(cacheOf()) && !readFileSync(cacheOf()).equals(before)) || undefined,
      30_000,
    );
    await stopInstance(started);
    return started.codeCache;
  };

  before(async () => {
    dir = tempDir();
    bundle = await bundleWebService(dir, { codeCache: true });
    redis = await TestRedis.start();
  });
  after(async () => {
    for (const s of running) await stopInstance(s);
    await redis?.stop();
  });

  it("starts through the CommonJS twin, serving what the ESM bundle serves", async () => {
    const entry = instanceEntry(bundle);
    assert.equal(path.basename(entry.modulePath), codeCacheStarterName);
    assert.deepEqual(entry.args, [path.join(dir, webServiceScriptName)]);
    const esm = await startWebService({ modulePath: bundle, args: [] }, redis.port);
    running.push(esm);
    const fromEsm = await count(esm.url);
    await stopInstance(esm);
    const { answer } = await startOnce();
    assert.equal(answer.count, fromEsm.count + 1, "the same Redis counter");
    assert.deepEqual(Object.keys(answer).sort(), Object.keys(fromEsm).sort());
  });

  it("writes the cache once the first start listens; the next start compiles from it", async () => {
    rmSync(cacheOf(), { force: true }); // the start above may have written it already
    assert.equal(await startAndWriteCache(), "absent");
    const next = await startOnce();
    assert.equal(next.codeCache, "used");
  });

  it("a corrupt cache (bytes changed) is ignored: the start compiles as usual, serves and replaces it", async () => {
    const file = cacheOf();
    const bytes = readFileSync(file);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
    writeFileSync(file, bytes);
    assert.equal(await startAndWriteCache(), "corrupt");
    assert.equal((await startOnce()).codeCache, "used", "the replaced cache is used");
  });

  it("a truncated cache is ignored too", async () => {
    const file = cacheOf();
    writeFileSync(file, readFileSync(file).subarray(0, 1000));
    assert.equal(await startAndWriteCache(), "corrupt");
  });

  it("a well-formed cache V8 refuses (made from other code) is rejected: the start compiles as usual", async () => {
    writeCodeCache(cacheOf(), new vm.Script("globalThis.other = 1;").createCachedData());
    assert.equal(await startAndWriteCache(), "rejected");
    assert.equal((await startOnce()).codeCache, "used");
  });

  it("a rebuilt bundle never compiles from the previous bundle's cache", async () => {
    const previousCache = cacheOf();
    assert.ok(existsSync(previousCache));
    // The same bundle with one byte more: the cache of the previous bytes stays where it was.
    appendFileSync(path.join(dir, webServiceScriptName), "\n");
    assert.notEqual(cacheOf(), previousCache);
    assert.ok(existsSync(previousCache));
    assert.equal((await startOnce()).codeCache, "absent");
  });
});

describe("instanceEntry: where an instance starts from", () => {
  it("the bundle itself when it was built without the CommonJS twin, or when one left here is stale", async () => {
    const dir = tempDir();
    const plain = await bundleWebService(dir);
    assert.deepEqual(instanceEntry(plain), { modulePath: plain, args: [] });
    const twin = await bundleWebService(dir, { codeCache: true });
    assert.equal(path.basename(instanceEntry(twin).modulePath), codeCacheStarterName);
    // Rebuilt without it in the same folder: the older twin is removed, not started.
    const again = await bundleWebService(dir);
    assert.deepEqual(instanceEntry(again), { modulePath: again, args: [] });
    assert.deepEqual(
      readdirSync(dir).filter((f) => f === webServiceScriptName || f === codeCacheStarterName),
      [],
    );
  });

  it("the bundle itself with STAYUP_CODE_CACHE=off", async () => {
    const dir = tempDir();
    const bundle = await bundleWebService(dir, { codeCache: true });
    const saved = process.env.STAYUP_CODE_CACHE;
    process.env.STAYUP_CODE_CACHE = "off";
    try {
      assert.deepEqual(instanceEntry(bundle), { modulePath: bundle, args: [] });
    } finally {
      if (saved === undefined) delete process.env.STAYUP_CODE_CACHE;
      else process.env.STAYUP_CODE_CACHE = saved;
    }
    copyFileSync(bundle, `${bundle}.copy`); // nothing else in the folder changes the answer
    assert.equal(path.basename(instanceEntry(bundle).modulePath), codeCacheStarterName);
  });
});
