/**
 * The container image, read without a Docker engine: the Dockerfile's stages, user, bundle, port
 * and health check agree with the stack description, and the bundle and probe it names work.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import {
  containerBundlePath,
  containerHealthProbe,
  containerHealthTimings,
} from "../src/aws/ecs/container.ts";
import { findFreePort } from "../src/shared/net.ts";
import { webServiceBundleName } from "../src/web-service/bundle.ts";
import { description } from "./aws-helpers.ts";
import { repoRoot, tempDir, waitFor } from "./helpers.ts";

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Instruction[][] {
  const joined = text
    .split("\n")
    .filter((l) => !l.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  const stages: Instruction[][] = [];
  for (const line of joined.split("\n")) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const instruction = { keyword: m[1] as string, args: (m[2] as string).trim() };
    if (instruction.keyword === "FROM") stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

const dockerfile = parseDockerfile(readFileSync(path.join(repoRoot, "Dockerfile"), "utf8"));
const runtime = dockerfile.at(-1) ?? [];
const args = (stage: Instruction[], keyword: string) =>
  stage.filter((i) => i.keyword === keyword).map((i) => i.args);

describe("container image (Dockerfile)", () => {
  it("is multi-stage and every base image is pinned to an exact version or digest", () => {
    assert.ok(dockerfile.length >= 2, "a build stage and a runtime stage");
    for (const stage of dockerfile) {
      const from = (args(stage, "FROM")[0] ?? "").split(/\s+/)[0] ?? "";
      assert.match(from, /(@sha256:[0-9a-f]{64}$)|(:\d+\.\d+\.\d+(-[a-z0-9-]+)?$)/, `${from} is pinned`);
    }
  });

  it("runs as a non-root user in the runtime stage", () => {
    const users = args(runtime, "USER");
    assert.equal(users.length, 1);
    assert.ok(!["root", "0", "0:0", "root:root"].includes(users[0] as string), `USER ${users[0]}`);
    // The user is set before the command, so the process never starts as root.
    const kinds = runtime.map((i) => i.keyword);
    assert.ok(kinds.indexOf("USER") < kinds.indexOf("CMD"));
  });

  it("copies only the web-service bundle from the build stage and runs it", () => {
    const copies = args(runtime, "COPY");
    assert.equal(copies.length, 1, "one COPY into the runtime stage");
    assert.match(copies[0] as string, /^--from=build\b/);
    assert.ok(copies[0]?.includes(`/out/${webServiceBundleName} `), copies[0]);
    assert.ok(!args(runtime, "RUN").some((r) => r.includes("npm")), "no npm in the runtime stage");
    const cmd = JSON.parse(args(runtime, "CMD")[0] as string) as string[];
    assert.equal(cmd.at(-1), containerBundlePath);
    assert.equal(path.posix.basename(containerBundlePath), webServiceBundleName);
  });

  it("listens on the description's web port", async () => {
    const d = await description("dev");
    assert.deepEqual(args(runtime, "EXPOSE"), [String(d.webService.port)]);
    assert.ok(args(runtime, "ENV").some((e) => new RegExp(`\\bPORT=${d.webService.port}\\b`).test(e)));
  });

  it("its HEALTHCHECK is the task definition's probe with the description's timings", async () => {
    const d = await description("dev");
    const hc = args(runtime, "HEALTHCHECK")[0] ?? "";
    const t = containerHealthTimings(d);
    assert.ok(hc.includes(`--interval=${t.intervalSeconds}s`), hc);
    assert.ok(hc.includes(`--timeout=${t.timeoutSeconds}s`), hc);
    assert.ok(hc.includes(`--retries=${t.retries}`), hc);
    assert.ok(hc.includes(`--start-period=${t.startPeriodSeconds}s`), hc);
    const command = JSON.parse(hc.slice(hc.indexOf("CMD") + 3).trim()) as string[];
    assert.deepEqual(command, containerHealthProbe(d));
  });

  it(".dockerignore lets in only what the build stage copies", () => {
    const lines = readFileSync(path.join(repoRoot, ".dockerignore"), "utf8")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"));
    assert.equal(lines[0], "*", "everything excluded first (no node_modules, .stayup or cdk.out)");
    for (const copied of [
      "package.json",
      "package-lock.json",
      "tsconfig.json",
      "bin/bundle-web-service.mjs",
      "src/",
    ]) {
      assert.ok(lines.includes(`!${copied}`), `${copied} is let in`);
    }
  });

  it(
    "the build stage's bundler writes the bundle, and the probe reports it healthy",
    { timeout: 60_000 },
    async () => {
      const out = tempDir("stayup-image-");
      await promisify(execFile)(process.execPath, [path.join(repoRoot, "bin/bundle-web-service.mjs"), out]);
      const bundle = path.join(out, webServiceBundleName);
      assert.ok(existsSync(bundle));
      const d = await description("dev");
      const port = await findFreePort();
      const probe = containerHealthProbe({ ...d, webService: { port } });
      const runProbe = () =>
        new Promise<number | null>((resolve) => {
          const child = spawn(probe[0] as string, probe.slice(1), { stdio: "ignore" });
          child.on("exit", resolve);
        });
      assert.equal(await runProbe(), 1, "unhealthy while nothing listens");
      // As the image's CMD runs it; Redis is unreachable, which /health does not depend on.
      const service = spawn(process.execPath, [bundle], {
        env: {
          ...process.env,
          HOST: "127.0.0.1",
          PORT: String(port),
          STAYUP_REDIS_URL: `redis://127.0.0.1:${await findFreePort()}`,
          STAYUP_REDIS_READY_TIMEOUT_MS: "100",
          LOG_LEVEL: "silent",
        },
        stdio: "ignore",
      });
      try {
        await waitFor("the probe to pass", async () => ((await runProbe()) === 0 ? true : undefined), 30_000);
      } finally {
        service.kill("SIGKILL");
      }
    },
  );
});
