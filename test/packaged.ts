/**
 * stayup as a user's project gets it: `npm pack` of this repository, then `npm install --save-dev
 * <tarball>` into a fresh folder, and `npx stayup` there.
 *
 * Installing takes most of a minute (aws-cdk-lib alone is a quarter of it), so under test/run.ts
 * (which sets STAYUP_TEST_PACKAGE_CACHE and removes it when the run ends) the tarball is packed
 * and installed once per run, into a fresh folder of the cache; every project after the first gets
 * its own fresh folder whose node_modules is a link to that install. Without the variable each
 * project installs for itself.
 */
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import path from "node:path";
import { type CliResult, repoRoot, tempDir } from "./helpers.ts";

/** Runs a command to its end, with a time bound (then SIGKILL), collecting its output. */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; timeoutMs?: number; env?: NodeJS.ProcessEnv },
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const npmFlags = ["--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"];

/** `npm pack` of the repository into `dir`; the tarball's path. */
async function pack(dir: string): Promise<string> {
  const result = await run("npm", ["pack", "--pack-destination", dir, "--loglevel=error"], { cwd: repoRoot });
  if (result.code !== 0) throw new Error(`npm pack failed: ${result.stderr}`);
  const tarball = readdirSync(dir).find((f) => f.startsWith("stayup-") && f.endsWith(".tgz"));
  if (!tarball) throw new Error(`npm pack wrote no tarball into ${dir}: ${result.stdout}`);
  return path.join(dir, tarball);
}

/** A user's package.json: a name, a start script, nothing of stayup's yet. */
function writeProjectPackage(dir: string, name: string): void {
  writeFileSync(
    path.join(dir, "package.json"),
    `${JSON.stringify({ name, version: "1.0.0", private: true, scripts: { start: "node server.js" } }, null, 2)}\n`,
  );
}

/** Packs and installs into `dir` (a project folder): what a user does. */
async function installInto(dir: string, packDir: string): Promise<void> {
  const tarball = await pack(packDir);
  const result = await run("npm", ["install", "--save-dev", ...npmFlags, tarball], {
    cwd: dir,
    timeoutMs: 300_000,
  });
  if (result.code !== 0)
    throw new Error(`npm install of ${tarball} failed (${result.code}): ${result.stderr}`);
}

/** The run's shared install (made by the first caller; the others wait for it), or undefined. */
async function sharedInstall(): Promise<string | undefined> {
  const cache = process.env.STAYUP_TEST_PACKAGE_CACHE;
  if (!cache) return undefined;
  const project = path.join(cache, "project");
  const done = path.join(cache, "installed");
  const lock = path.join(cache, "installing");
  const deadline = Date.now() + 360_000;
  for (;;) {
    if (existsSync(done)) return project;
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`waited 6 min for another suite's install in ${cache}`);
      await sleep(500);
    }
  }
  try {
    rmSync(project, { recursive: true, force: true });
    mkdirSync(project);
    writeProjectPackage(project, "shared-install");
    await installInto(project, cache);
    writeFileSync(done, "");
    return project;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface Project {
  dir: string;
  /** `npx stayup <args>` in the project, as its user runs it. */
  stayup(args: string[], options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<CliResult>;
}

/**
 * A fresh project folder (package.json with `start: node server.js`, plus `files`) in which
 * stayup is installed from a packed tarball.
 */
export async function projectWithStayup(files: Record<string, string> = {}): Promise<Project> {
  const dir = tempDir("stayup-project-");
  writeProjectPackage(dir, "my-service");
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const shared = await sharedInstall();
  if (shared) {
    // The project's package.json as npm install --save-dev left the shared one.
    const installed = JSON.parse(readFileSync(path.join(shared, "package.json"), "utf8")) as Record<
      string,
      unknown
    >;
    const own = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(
      path.join(dir, "package.json"),
      `${JSON.stringify({ ...own, devDependencies: installed.devDependencies }, null, 2)}\n`,
    );
    symlinkSync(path.join(shared, "node_modules"), path.join(dir, "node_modules"), "dir");
  } else await installInto(dir, tempDir("stayup-pack-"));
  // Nothing of the npm that runs the tests (npm_package_json, npm_config_*…): the project is elsewhere.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== "INIT_CWD"),
  );
  return {
    dir,
    stayup: (args, options = {}) =>
      run("npx", ["--no-install", "stayup", ...args], {
        cwd: dir,
        timeoutMs: options.timeoutMs ?? 120_000,
        env: { ...env, ...options.env },
      }),
  };
}
