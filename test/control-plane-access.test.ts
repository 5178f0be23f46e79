import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import type { StackStateFile } from "../src/local/control-plane/state-file.ts";
import type { StackStatus } from "../src/local/runtime.ts";
import { isAlive, runCli, tempDir, upDetached } from "./helpers.ts";

/** Only the user who can read the state file drives the stack: token, loopback Host, own Origin. */
describe("control plane access", { timeout: 180_000 }, () => {
  const stateDir = path.join(tempDir(), ".stayup");
  const stateFile = path.join(stateDir, "stack.json");
  let state: StackStateFile;
  let host: string;

  const send = (
    route: string,
    init: { method?: "GET" | "POST"; headers?: Record<string, string>; token?: string | null } = {},
  ) =>
    request(`${state.controlUrl}${route}`, {
      method: init.method ?? "GET",
      headers: {
        host,
        ...(init.token === null ? {} : { authorization: `Bearer ${init.token ?? state.token}` }),
        ...init.headers,
      },
    });
  const status = async () => {
    const res = await send("/status");
    assert.equal(res.statusCode, 200);
    return (await res.body.json()) as StackStatus;
  };

  before(async () => {
    await upDetached(stateDir);
    state = JSON.parse(readFileSync(stateFile, "utf8")) as StackStateFile;
    host = new URL(state.controlUrl).host;
  });
  after(async () => {
    await runCli(["down", "--state-dir", stateDir]);
  });

  it("keeps the state file, which holds the token, readable by its owner only (0600)", () => {
    assert.equal(statSync(stateFile).mode & 0o777, 0o600);
    assert.match(state.token, /^[A-Za-z0-9_-]{43}$/);
  });

  it("refuses a shutdown without the token, or with a wrong one, and the stack keeps running", async () => {
    for (const token of [null, "x".repeat(43)]) {
      const res = await send("/shutdown", { method: "POST", token });
      assert.equal(res.statusCode, 401);
      assert.match(((await res.body.json()) as { reason: string }).reason, /token/);
    }
    const res = await send("/status", { token: null });
    assert.equal(res.statusCode, 401);
    await res.body.dump();
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(isAlive(state.pid));
    assert.equal((await status()).regions[0]?.down, false);
  });

  it("refuses a foreign Host (DNS rebinding) even with the token, and reveals nothing", async () => {
    const port = new URL(state.controlUrl).port;
    for (const foreign of [
      `evil.example:${port}`,
      `127.0.0.1.evil.example:${port}`,
      "127.0.0.1:1",
      "127.0.0.1",
    ]) {
      const res = await send("/status", { headers: { host: foreign } });
      assert.equal(res.statusCode, 403, foreign);
      const body = await res.body.text();
      assert.doesNotMatch(body, /instances|listener/);
    }
    for (const loopback of [`localhost:${port}`, `127.0.0.1:${port}`, `127.1.2.3:${port}`]) {
      const res = await send("/status", { headers: { host: loopback } });
      assert.equal(res.statusCode, 200, loopback);
      await res.body.dump();
    }
  });

  it("refuses a cross-site Origin even with the token, and changes nothing", async () => {
    const before = await status();
    const az = before.instances[0]?.az ?? "";
    const res = await send(`/faults/az-outage?az=${az}`, {
      method: "POST",
      headers: { origin: "http://evil.example" },
    });
    assert.equal(res.statusCode, 403);
    await res.body.dump();
    const shutdown = await send("/shutdown", { method: "POST", headers: { origin: "null" } });
    assert.equal(shutdown.statusCode, 403);
    await shutdown.body.dump();
    await new Promise((r) => setTimeout(r, 500));
    const after = await status();
    assert.ok(isAlive(state.pid));
    assert.deepEqual(
      after.instances.map((i) => i.id),
      before.instances.map((i) => i.id),
    );
    const own = await send("/status", { headers: { origin: `http://${host}` } });
    assert.equal(own.statusCode, 200);
    await own.body.dump();
  });

  it("lets nobody in by a cookie or a token in the query: the Bearer header only; sets no cookie, clears an old one", async () => {
    const port = new URL(state.controlUrl).port;
    for (const [route, headers, cleared] of [
      [`/status?token=${state.token}`, {}, []],
      ["/status", { cookie: `stayup_token_${port}=${state.token}` }, [`stayup_token_${port}`]],
      [`/dashboard?token=${state.token}&x`, { cookie: `token=${state.token}` }, []],
      // An earlier version's cookies (another stack's port, the first unported name): cleared too.
      [
        "/dashboard",
        { cookie: `a=1; stayup_token_1234=${state.token}; stayup_token=${state.token}` },
        ["stayup_token_1234", "stayup_token"],
      ],
    ] as const) {
      const res = await send(route, { token: null, headers });
      const body = await res.body.text();
      // Only ever `Max-Age=0` with an empty value, for the stayup_token cookies the request carried.
      const setCookie = [res.headers["set-cookie"] ?? []].flat();
      assert.deepEqual(
        setCookie,
        cleared.map((name) => `${name}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict`),
        route,
      );
      // The dashboard's shell is public and holds nothing; every datum needs the header.
      if (route.startsWith("/dashboard"))
        assert.ok(!body.includes(state.token) && !body.includes(state.listener));
      else assert.equal(res.statusCode, 401, route);
    }
  });

  it("answers everything with a strict CSP, no framing, no Referer, nosniff and no-store", async () => {
    const answers = [
      await send("/status"),
      await send("/status", { token: null }),
      await send("/status", { headers: { host: "evil.example" } }),
      await send("/nowhere"),
      await send("/dashboard", { token: null }),
      await send("/dashboard/app.js", { token: null }),
      await send("/dashboard/app.css", { token: null }),
      await send("/drills"),
    ];
    assert.deepEqual(
      answers.map((r) => r.statusCode),
      [200, 401, 403, 404, 200, 200, 200, 200],
    );
    for (const res of answers) {
      await res.body.dump();
      const csp = String(res.headers["content-security-policy"]);
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'(;|$)/, "no inline script, no other origin");
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(res.headers["x-frame-options"], "DENY");
      assert.equal(res.headers["referrer-policy"], "no-referrer");
      assert.equal(res.headers["x-content-type-options"], "nosniff");
      assert.equal(res.headers["cache-control"], "no-store", "no answer is kept in a cache");
    }
  });

  it("the CLI reads the token from the state file: status works unchanged", async () => {
    const res = await runCli(["status", "--json", "--state-dir", stateDir]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal((JSON.parse(res.stdout) as StackStatus).pid, state.pid);
  });
});
