import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { processStartOf } from "../src/shared/process-info.ts";
import { repoRoot, tempDir, waitFor } from "./helpers.ts";

const takers = 12;
/** State folders each taker tries in turn, in step with the others: one race per folder. */
const rounds = 25;

/**
 * A process that, when `go` appears (so every taker starts at the same moment), tries the up lock
 * of each state folder in turn, says "won" or "lost" for each (one line, comma-separated), and
 * holds the locks it won until its stdin closes.
 */
const takerScript = (stateDirs: string[], go: string) => `
  import { existsSync } from "node:fs";
  import { UpLock } from ${JSON.stringify(upLockModule)};
  process.setMaxListeners(0);
  process.stdout.write("ready\\n");
  while (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 1));
  const outcomes = ${JSON.stringify(stateDirs)}.map((stateDir) => {
    try {
      UpLock.acquire(stateDir);
      return "won";
    } catch (error) {
      return /another .stayup up. is already running/.test(error.message) ? "lost" : "error " + error.message;
    }
  });
  process.stdout.write(outcomes.join(",") + "\\n");
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
`;

/**
 * src/local/up-lock.ts and what it imports, bundled once into plain JavaScript: each taker then
 * starts as a bare `node` (about 0.05 s of CPU) rather than through tsx (about 0.5 s, 12 takers a
 * race), and runs the same code.
 */
let upLockModule = "";
async function bundleUpLock(): Promise<void> {
  const out = path.join(tempDir(), "up-lock.mjs");
  await build({
    entryPoints: [path.join(repoRoot, "src/local/up-lock.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile: out,
    logLevel: "silent",
  });
  upLockModule = pathToFileURL(out).href;
}

/** Each folder's outcomes, one per taker (in the takers' order). */
async function race(stateDirs: string[]): Promise<{ outcomes: string[][]; children: ChildProcess[] }> {
  const go = path.join(tempDir(), "go");
  const children = Array.from({ length: takers }, () =>
    spawn(process.execPath, ["--input-type=module", "-e", takerScript(stateDirs, go)], {
      cwd: repoRoot,
      stdio: ["pipe", "pipe", "inherit"],
    }),
  );
  const lines = children.map((child) => {
    const out: string[] = [];
    createInterface({ input: child.stdout! }).on("line", (l) => out.push(l));
    return out;
  });
  await waitFor("every taker ready", () => lines.every((l) => l.includes("ready")) || undefined, 120_000);
  writeFileSync(go, "");
  const byTaker = await waitFor(
    "every taker's outcomes",
    () => (lines.every((l) => l.length > 1) ? lines.map((l) => (l[1] as string).split(",")) : undefined),
    120_000,
  );
  return { outcomes: stateDirs.map((_, i) => byTaker.map((o) => o[i] as string)), children };
}

async function release(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.stdin?.end();
        }),
    ),
  );
}

const stateDirs = () => {
  const root = tempDir();
  return Array.from({ length: rounds }, (_, i) => path.join(root, String(i), ".stayup"));
};

function assertOneWinner(dirs: string[], outcomes: string[][], children: ChildProcess[]): void {
  dirs.forEach((stateDir, i) => {
    const each = outcomes[i] ?? [];
    assert.equal(each.filter((o) => o === "won").length, 1, `${stateDir}: ${each.join(", ")}`);
    assert.equal(each.filter((o) => o === "lost").length, takers - 1, `${stateDir}: ${each.join(", ")}`);
    const winner = children[each.indexOf("won")];
    // Complete from the start: the winner's pid and its start, which tell it from a pid reused later.
    assert.ok(winner?.pid);
    assert.equal(
      readFileSync(path.join(stateDir, "up.lock"), "utf8"),
      `${winner.pid} ${processStartOf(winner.pid)}\n`,
    );
    assert.deepEqual(
      readdirSync(stateDir).filter((f) => f !== "up.lock"),
      [],
      "no claim or temporary file left",
    );
  });
}

describe("the up lock: of many concurrent takers exactly one wins", { timeout: 300_000 }, () => {
  before(bundleUpLock);

  it("with no lock file", async () => {
    const dirs = stateDirs();
    const { outcomes, children } = await race(dirs);
    try {
      assertOneWinner(dirs, outcomes, children);
    } finally {
      await release(children);
    }
    for (const stateDir of dirs) {
      assert.ok(!existsSync(path.join(stateDir, "up.lock")), "the winner's exit released it");
    }
  });

  it("with a stale lock left by a killed holder (taken over by exactly one)", async () => {
    const dirs = stateDirs();
    const dead = spawn(process.execPath, ["-e", "0"]);
    await new Promise((r) => dead.once("exit", r));
    for (const stateDir of dirs) {
      mkdirSync(stateDir, { recursive: true });
      writeFileSync(path.join(stateDir, "up.lock"), `${dead.pid}\n`);
    }
    const { outcomes, children } = await race(dirs);
    try {
      assertOneWinner(dirs, outcomes, children);
    } finally {
      await release(children);
    }
  });

  it("with a lock whose pid now names another node process (started later): stale, taken over by exactly one", async () => {
    const dirs = stateDirs();
    // A live node process, as a pid reused after the holder's SIGKILL would be: only its start
    // tells it from the holder (its command line is `node` all the same).
    const other = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    try {
      const start = await waitFor("its start", () => (other.pid ? processStartOf(other.pid) : undefined));
      assert.ok(other.pid);
      for (const stateDir of dirs) {
        mkdirSync(stateDir, { recursive: true });
        writeFileSync(path.join(stateDir, "up.lock"), `${other.pid} ${start}-not\n`);
      }
      const { outcomes, children } = await race(dirs);
      try {
        assertOneWinner(dirs, outcomes, children);
      } finally {
        await release(children);
      }
      // The same pid with its true start holds the lock: every taker loses.
      const held = stateDirs().slice(0, 3);
      for (const stateDir of held) {
        mkdirSync(stateDir, { recursive: true });
        writeFileSync(path.join(stateDir, "up.lock"), `${other.pid} ${start}\n`);
      }
      const second = await race(held);
      try {
        for (const each of second.outcomes) assert.deepEqual(new Set(each), new Set(["lost"]));
      } finally {
        await release(second.children);
      }
    } finally {
      other.kill("SIGKILL");
    }
  });
});
