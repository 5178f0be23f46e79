import { spawn } from "node:child_process";
import { closeSync, existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import { ControlPlaneServer } from "../../../local/control-plane/server.ts";
import { stateFileName } from "../../../local/control-plane/state-file.ts";
import { registryDrillRunner } from "../../../drills/runner.ts";
import { formatEvent } from "../../../local/events/bus.ts";
import { describeLeftover, stopLeftovers } from "../../../local/leftovers.ts";
import { runtimeNodeFlags } from "../../../local/node-flags.ts";
import { processFileName } from "../../../local/processes.ts";
import { localRedisPassword } from "../../../local/redis/process.ts";
import { createLocalStack } from "../../../local/topologies/index.ts";
import { UpLock, upLockFileName } from "../../../local/up-lock.ts";
import { StayupError } from "../../../shared/errors.ts";
import { sleep } from "../../../shared/net.ts";
import {
  ensurePrivateDir,
  makeTreePrivate,
  openPrivateFile,
  privateUmask,
  writePrivateFileAtomic,
} from "../../../shared/private-file.ts";
import type { ResolvedStack } from "../../../stack/schema.ts";
import { configOption, envOption, type LocalOptions, stateDirOption, topologyOption } from "../../options.ts";
import { parsePort } from "../../parse.ts";
import { interruptSignals } from "../../interrupt-signals.ts";
import { describeRoll, interruptedRollLine, rollStoppable } from "../roll/index.ts";
import { printStatusTable } from "../status/index.ts";
import { runningTopology } from "../drill/index.ts";
import type { StackStatus } from "../../../local/runtime.ts";

/**
 * The description `up --detach` validated, handed to the runtime it starts (a private file in the
 * state folder, named in the runtime's environment, removed once read): the runtime runs the
 * description it was given without loading the description's compiler and validator (esbuild,
 * zod), which an idle runtime would hold for its life (issue 25, item 12).
 */
const resolvedStackFileName = "resolved-stack.json";
const resolvedStackVariable = "STAYUP_RESOLVED_STACK";

/** The description to run: the one handed over by `up --detach`, else loaded and validated here. */
async function stackToRun(opts: UpOptions): Promise<ResolvedStack> {
  const handed = process.env[resolvedStackVariable];
  if (handed) {
    delete process.env[resolvedStackVariable];
    const stack = JSON.parse(readFileSync(handed, "utf8")) as ResolvedStack;
    rmSync(handed, { force: true });
    return stack;
  }
  const { loadStack, nothingStarted } = await import("../../../stack/index.ts");
  return loadStack(opts.config, opts.env, { topology: opts.topology }).catch(nothingStarted);
}

const binPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../bin/stayup.mjs");

/** What stayup keeps in a state folder (tightened on every `up`). */
const stateEntries = [
  stateFileName,
  processFileName,
  upLockFileName,
  "stack.log",
  resolvedStackFileName,
  "redis",
  "logs",
  "build",
  "reports",
  "tls",
  "volumes",
];

export type UpOptions = LocalOptions & {
  port?: number;
  redisPort?: number;
  dnsPort?: number;
  detach?: boolean;
};

/**
 * What the options given on the command line ask for that the running stack is not: its
 * environment, topology, listener, Redis or DNS port. `given`: the options the user typed (defaults
 * ask nothing); a port of 0 asks for any.
 */
export function mismatches(status: StackStatus, opts: UpOptions, given: ReadonlySet<string>): string[] {
  const found: string[] = [];
  if (given.has("env") && opts.env !== status.environment) {
    found.push(`--env ${opts.env} (it runs environment "${status.environment}")`);
  }
  const topology = runningTopology(status);
  if (opts.topology !== undefined && opts.topology !== topology) {
    found.push(`--topology ${opts.topology} (it runs topology "${topology}")`);
  }
  const port = Number(new URL(status.listener).port);
  if (opts.port !== undefined && opts.port !== 0 && opts.port !== port) {
    found.push(`--port ${opts.port} (it listens on ${port})`);
  }
  // --redis-port is the first Redis node's (redis-a); a single instance's Redis is its own.
  const nodes = status.redis.nodes ?? [];
  const redisPort = (nodes.find((n) => n.name === "redis-a") ?? nodes[0])?.port;
  if (
    opts.redisPort !== undefined &&
    opts.redisPort !== 0 &&
    redisPort !== undefined &&
    opts.redisPort !== redisPort
  ) {
    found.push(`--redis-port ${opts.redisPort} (its Redis listens on ${redisPort})`);
  }
  const dnsPort = status.dns ? Number(status.dns.server.split(":").pop()) : undefined;
  if (opts.dnsPort !== undefined && opts.dnsPort !== 0 && dnsPort !== undefined && opts.dnsPort !== dnsPort) {
    found.push(`--dns-port ${opts.dnsPort} (its DNS server listens on ${dnsPort})`);
  }
  return found;
}

/**
 * The state folder 0700 (created so, or made so again) and what stayup keeps in it the owner's
 * alone; a --state-dir naming a folder of other things (., ~) leaves those alone.
 */
function tightenStateDir(stateDir: string): void {
  ensurePrivateDir(stateDir);
  for (const name of stateEntries) makeTreePrivate(path.join(stateDir, name));
}

/** `stayup up`: runs the stack in this process until Ctrl-C or `stayup down` (or in the background). */
export async function up(opts: UpOptions, given: ReadonlySet<string> = new Set()): Promise<void> {
  // Everything this run and what it starts create (state, logs, Redis files, reports) is the
  // user's alone; what an earlier run or version left looser is tightened (below), folder first.
  process.umask(privateUmask);
  const existing = StackClient.find(opts.stateDir);
  if (existing) {
    // A running stack's folder too: whatever loosened it since is tightened by this `up`.
    tightenStateDir(opts.stateDir);
    // Asked for another stack than the one running: say so, rather than roll or answer "already runs".
    const differ = mismatches(await existing.status(), opts, given);
    if (differ.length > 0) {
      throw new StayupError(
        `a stack is already running from ${path.resolve(opts.stateDir)} (pid ${existing.state.pid}), not the one asked for: ${differ.join(", ")}`,
        "stop it first (`stayup down`) to start it with these, drop the options to use it as it runs, or pass another --state-dir",
      );
    }
    // A running stack: `up` brings it to the current service bundle and instance settings with a
    // rolling deploy (as `stayup roll`), and starts nothing twice.
    process.stderr.write(
      `a stack is already running from ${path.resolve(opts.stateDir)} (pid ${existing.state.pid}): checking whether the service bundle or instance settings changed...\n`,
    );
    // The settings it runs with (an earlier `roll --set`) are kept: only a new bundle is news. A
    // roll that fails (the bundle does not build, another roll under way) is said as such: the
    // stack may well not run this version.
    // Ctrl-C meanwhile stops the roll with rollback, as `stayup roll` does.
    const rolled = await rollStoppable(existing, {}, { keepSettings: true, what: "stayup up" }).catch(
      (error: unknown) => {
        const reason = error instanceof Error ? error.message : String(error);
        throw new StayupError(
          `a stack is already running from ${path.resolve(opts.stateDir)} (pid ${existing.state.pid}), and bringing it to the current version failed: ${reason}`,
          (error instanceof StayupError ? error.hint : undefined) ??
            "fix what the error names, then run `stayup up` (or `stayup roll`) again; `stayup down` stops the stack",
        );
      },
    );
    const result = rolled.result;
    if (result.instancesReplaced.length > 0 || result.rolledBack) {
      for (const line of describeRoll(result)) console.log(line);
      if (rolled.interrupted) {
        process.stderr.write(`${interruptedRollLine("stayup up", rolled.interrupted, result)}\n`);
        process.exitCode = interruptSignals[rolled.interrupted];
      } else if (result.rolledBack) process.exitCode = 1;
      return;
    }
    throw new StayupError(
      `a stack is already running from ${path.resolve(opts.stateDir)} (pid ${existing.state.pid}, ${existing.state.listener}) and already runs this version`,
      "stop it with `stayup down`, or use another --state-dir",
    );
  }
  // A bad description is refused before anything is created (the state folder included).
  const resolved = await stackToRun(opts);
  tightenStateDir(opts.stateDir);
  // One `up` per state folder; a detached child adopts the lock its parent took.
  const handedFrom = Number(process.env.STAYUP_UP_LOCK_FROM ?? 0);
  const lock = handedFrom ? UpLock.adopt(opts.stateDir, handedFrom) : UpLock.acquire(opts.stateDir);
  if (opts.detach) return upDetached(opts, lock, resolved);
  // What a killed run left (Redis, Sentinels): stopped cleanly, their data kept as the newest copy.
  const leftovers = await stopLeftovers(opts.stateDir, localRedisPassword(opts.stateDir));
  if (leftovers.length > 0) {
    console.log(
      `stopped ${leftovers.length} process(es) left by an earlier run that was killed: ${leftovers.map(describeLeftover).join(", ")}`,
    );
  }

  const stack = createLocalStack({
    stack: resolved,
    stateDir: opts.stateDir,
    listenerPort: opts.port,
    redisPort: opts.redisPort,
    dnsPort: opts.dnsPort,
  });
  // A drill's client figures come each second: its own output and the dashboard show them.
  stack.events.subscribe((e) => {
    if (e.type !== "client.traffic") console.log(formatEvent(e));
  });
  let stopping = false;
  const control = new ControlPlaneServer(stack, () => void shutdown("stayup down"), {
    drills: registryDrillRunner,
  });
  const shutdown = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    control.removeStateFile(opts.stateDir);
    await control.close();
    await stack.stop(reason);
    lock.release();
    process.exit(0);
  };
  process.on("SIGINT", () => {
    if (stopping) process.exit(130); // second Ctrl-C: do not wait for draining
    void shutdown("Ctrl-C");
  });
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  // Closing the terminal: stop cleanly, as for SIGTERM, rather than leave Redis behind.
  process.on("SIGHUP", () => void shutdown("SIGHUP"));
  await stack.start();
  await control.listen();
  control.writeStateFile(opts.stateDir);
  console.log(
    `\nstayup is up: ${stack.loadBalancer.url}\n` +
      `  try:   curl ${stack.loadBalancer.url}/\n` +
      `  see:   ${dashboardLine(control.dashboardUrl, Boolean(process.stdout.isTTY), opts.stateDir)}\n` +
      "  watch: npx stayup status        break: npx stayup drill kill-instance\n" +
      "  stop:  Ctrl-C here, or npx stayup down\n",
  );
}

/**
 * The dashboard's address as `up` prints it: with what logs it in only to a terminal. Anywhere else
 * (stack.log of `up --detach`, a redirect) it is written to a file, and no secret goes in a log:
 * the address without its query or fragment, and the command that prints the login.
 */
export function dashboardLine(dashboardUrl: string, terminal: boolean, stateDir: string): string {
  if (terminal) return dashboardUrl;
  const url = new URL(dashboardUrl);
  url.search = "";
  url.hash = "";
  const status = `npx stayup status --state-dir ${JSON.stringify(stateDir)}`;
  return `${url.href} (to log in: \`${status}\` prints its address with the token)`;
}

async function upDetached(opts: UpOptions, lock: UpLock, resolved: ResolvedStack): Promise<void> {
  const logFile = path.join(opts.stateDir, "stack.log");
  const resolvedFile = path.join(opts.stateDir, resolvedStackFileName);
  writePrivateFileAtomic(resolvedFile, JSON.stringify(resolved));
  const log = openPrivateFile(logFile, "w");
  const args = [binPath, "up", "--config", opts.config, "--env", opts.env, "--state-dir", opts.stateDir];
  if (opts.topology !== undefined) args.push("--topology", opts.topology);
  if (opts.port !== undefined) args.push("--port", String(opts.port));
  if (opts.redisPort !== undefined) args.push("--redis-port", String(opts.redisPort));
  if (opts.dnsPort !== undefined) args.push("--dns-port", String(opts.dnsPort));
  const child = spawn(process.execPath, [...runtimeNodeFlags, ...args], {
    detached: true,
    stdio: ["ignore", log, log],
    env: {
      ...process.env,
      STAYUP_UP_LOCK_FROM: String(process.pid),
      [resolvedStackVariable]: path.resolve(resolvedFile),
    },
  });
  closeSync(log);
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = signal ?? `exit code ${code}`;
  });
  child.unref();
  process.stderr.write("starting the stack in the background");
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) {
      process.stderr.write("\n");
      const tail = existsSync(logFile)
        ? readFileSync(logFile, "utf8").trim().split("\n").slice(-15).join("\n")
        : "";
      throw new StayupError(`the stack exited while starting (${exited}):\n${tail}`, `full log: ${logFile}`);
    }
    const client = StackClient.find(opts.stateDir);
    if (client && client.state.pid === child.pid) {
      lock.handOver();
      process.stderr.write("\n");
      const status = await client.status();
      console.log(`stayup is up (pid ${client.state.pid}): ${client.state.listener}   log: ${logFile}`);
      printStatusTable(status);
      return;
    }
    process.stderr.write(".");
    await sleep(250);
  }
  child.kill("SIGTERM");
  throw new StayupError("the stack did not become ready within 60 s", `see ${logFile}`);
}

export function register(program: Command): void {
  program
    .command("up")
    .description("bring the local stack up: Redis, the instance group, health checks and the load balancer")
    .addOption(configOption())
    .addOption(envOption())
    .addOption(topologyOption())
    .addOption(stateDirOption())
    .option("-p, --port <port>", "load balancer listener port (default: loadBalancer.local.port)", parsePort)
    .option(
      "--redis-port <port>",
      "local Redis port (default: redis.localPort; 0 picks a free one)",
      parsePort,
    )
    .option(
      "--dns-port <port>",
      "local DNS server's UDP port (default: dns.local.port; 0 picks a free one)",
      parsePort,
    )
    .option("-d, --detach", "run in the background and return once every instance is healthy")
    .action((opts: UpOptions, command: Command) => {
      const given = new Set(
        command.options
          .map((o) => o.attributeName())
          .filter((name) => command.getOptionValueSource(name) === "cli"),
      );
      return up(opts, given);
    });
}
