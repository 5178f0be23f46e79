import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { bundleWebService } from "../src/web-service/bundle.ts";
import { TestRedis, tempDir } from "./helpers.ts";

function start(entry: string, redisPort: number, extra: Record<string, string>) {
  const child = fork(entry, [], {
    env: {
      ...process.env,
      STAYUP_INSTANCE_ID: "i-version01",
      STAYUP_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "warn",
      ...extra,
    },
    stdio: ["ignore", "ignore", "ignore", "ipc"],
  });
  const listening = new Promise<string>((resolve, reject) => {
    child.on("message", (m: { type?: string; port?: number }) => {
      if (m.type === "listening") resolve(`http://127.0.0.1:${m.port}`);
    });
    child.once("exit", (code) => reject(new Error(`exited with code ${code}`)));
  });
  return { child, listening };
}

describe("web service: the version that serves, and broken versions on purpose", () => {
  let entry: string;
  let redis: TestRedis;
  const children: ChildProcess[] = [];
  before(async () => {
    entry = await bundleWebService(tempDir());
    redis = await TestRedis.start();
  });
  after(async () => {
    for (const c of children) c.kill("SIGKILL");
    await redis?.stop();
  });

  it("every answer of GET / names the version given at launch", async () => {
    const instance = start(entry, redis.port, { STAYUP_VERSION: "v-0123456789ab" });
    children.push(instance.child);
    const url = await instance.listening;
    const json = JSON.parse(await (await request(`${url}/`)).body.text());
    assert.equal(json.version, "v-0123456789ab");
    assert.equal(typeof json.count, "number");
    const html = await (await request(`${url}/`, { headers: { accept: "text/html" } })).body.text();
    assert.match(html, /<code id="version">v-0123456789ab<\/code>/);
  });

  it("STAYUP_BROKEN=unhealthy listens but never passes its health check", async () => {
    const instance = start(entry, redis.port, { STAYUP_BROKEN: "unhealthy" });
    children.push(instance.child);
    const url = await instance.listening;
    const res = await request(`${url}/health`);
    assert.equal(res.statusCode, 503);
    await res.body.dump();
  });

  it("STAYUP_BROKEN=crash exits at start with a non-zero code", async () => {
    const instance = start(entry, redis.port, { STAYUP_BROKEN: "crash" });
    children.push(instance.child);
    await assert.rejects(instance.listening, /exited with code 1/);
  });
});
