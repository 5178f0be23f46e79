import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError, Option } from "commander";
import { azOutageDrill } from "../drills/az-outage.ts";
import { cpuSpikeDrill } from "../drills/cpu-spike.ts";
import { drillDefaults } from "../drills/harness.ts";
import { redisFailoverDrill } from "../drills/redis-failover.ts";
import { regionOutageDrill } from "../drills/region-outage.ts";
import { killInstanceDrill } from "../drills/kill-instance.ts";
import { type DrillReport, formatReport } from "../drills/report.ts";
import { StackClient } from "../local/control-plane/client.ts";
import { ControlPlaneServer } from "../local/control-plane/server.ts";
import { formatEvent } from "../local/events/bus.ts";
import { LocalStack, type StackStatus } from "../local/runtime.ts";
import { StayupError } from "../shared/errors.ts";
import { sleep } from "../shared/net.ts";
import { type EnvironmentName, loadStack } from "../stack/index.ts";
import { registerAwsCommands } from "./aws-commands.ts";
import { formatTable } from "../shared/table.ts";
import { configOption, envOption, stateDirOption } from "./options.ts";
import { StackSession } from "./stack-session.ts";

const binPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/stayup.mjs");

const parsePort = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError("must be a port number 0-65535");
  return n;
};
const parsePositive = (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("must be a positive number");
  return n;
};

interface CommonOptions {
  config: string;
  env: EnvironmentName;
  stateDir: string;
}

function printStatusTable(status: StackStatus): void {
  console.log(`${status.name} (${status.environment})   redis ${status.redis.url}`);
  if (status.dns) {
    console.log(
      `dns ${status.dns.name} on udp://${status.dns.server} → ${status.dns.answer} (${status.dns.primaryHealthy ? "primary healthy" : "FAILED OVER"})`,
    );
  }
  const rows = [["REGION", "INSTANCE", "AZ", "PID", "PORT", "STATE", "HEALTH"]];
  for (const region of status.regions) {
    const g = region.group;
    console.log(
      `${region.role} ${region.name}: ${region.listener}${region.down ? " (DOWN)" : ""}   group ${g.inService}/${g.desired} in service (min ${g.min}, max ${g.max})`,
    );
    for (const i of region.instances)
      rows.push([region.name, i.id, i.az, String(i.pid), String(i.port), i.state, i.health]);
  }
  console.log(formatTable(rows));
}

type UpOptions = CommonOptions & { port?: number; redisPort?: number; dnsPort?: number; detach?: boolean };

async function up(opts: UpOptions): Promise<void> {
  const existing = StackClient.find(opts.stateDir);
  if (existing) {
    throw new StayupError(
      `a stack is already running from ${path.resolve(opts.stateDir)} (pid ${existing.state.pid}, ${existing.state.listener})`,
      "stop it with `stayup down`, or use another --state-dir",
    );
  }
  const resolved = await loadStack(opts.config, opts.env);
  if (opts.detach) return upDetached(opts);

  mkdirSync(opts.stateDir, { recursive: true });
  const stack = new LocalStack({
    stack: resolved,
    stateDir: opts.stateDir,
    listenerPort: opts.port,
    redisPort: opts.redisPort,
    dnsPort: opts.dnsPort,
  });
  stack.events.subscribe((e) => console.log(formatEvent(e)));
  let stopping = false;
  const control = new ControlPlaneServer(stack, () => void shutdown("stayup down"));
  const shutdown = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    control.removeStateFile(opts.stateDir);
    await control.close();
    await stack.stop(reason);
    process.exit(0);
  };
  process.on("SIGINT", () => {
    if (stopping) process.exit(130); // second Ctrl-C: do not wait for draining
    void shutdown("Ctrl-C");
  });
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  await stack.start();
  await control.listen();
  control.writeStateFile(opts.stateDir);
  console.log(
    `\nstayup is up: ${stack.loadBalancer.url}\n` +
      `  try:   curl ${stack.loadBalancer.url}/\n` +
      "  watch: npx stayup status        break: npx stayup drill kill-instance\n" +
      "  stop:  Ctrl-C here, or npx stayup down\n",
  );
}

async function upDetached(opts: UpOptions): Promise<void> {
  mkdirSync(opts.stateDir, { recursive: true });
  const logFile = path.join(opts.stateDir, "stack.log");
  const log = openSync(logFile, "w");
  const args = [binPath, "up", "--config", opts.config, "--env", opts.env, "--state-dir", opts.stateDir];
  if (opts.port !== undefined) args.push("--port", String(opts.port));
  if (opts.redisPort !== undefined) args.push("--redis-port", String(opts.redisPort));
  if (opts.dnsPort !== undefined) args.push("--dns-port", String(opts.dnsPort));
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", log, log] });
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
    if (client) {
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

async function withStack<T>(
  opts: CommonOptions,
  quiet: boolean,
  run: (client: StackClient) => Promise<T>,
): Promise<T> {
  const running = StackClient.find(opts.stateDir);
  if (running) return run(running);
  const resolved = await loadStack(opts.config, opts.env);
  if (!quiet) console.error("no stack running here; starting a temporary one for this drill (free ports)...");
  const session = await StackSession.temporary(resolved);
  try {
    return await run(session.client);
  } finally {
    await session.stop();
  }
}

function printReport(report: DrillReport, json: boolean, details: string[]): void {
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report, details));
}

export function buildProgram(): Command {
  const program = new Command("stayup")
    .description("A highly-available web stack you can run on a laptop, break on purpose, and deploy to AWS.")
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });

  program
    .command("up")
    .description("bring the local stack up: Redis, the instance group, health checks and the load balancer")
    .addOption(configOption())
    .addOption(envOption())
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
    .action(up);

  program
    .command("down")
    .description("stop a stack started with `stayup up --detach` (or in another terminal)")
    .addOption(stateDirOption())
    .action(async (opts: { stateDir: string }) => {
      const client = StackClient.require(opts.stateDir);
      process.stderr.write(`stopping the stack (pid ${client.state.pid}): instances drain first...\n`);
      await client.shutdown();
      console.log("stack stopped");
    });

  program
    .command("status")
    .description("show the running stack: listener, group capacity, instances and their health")
    .addOption(stateDirOption())
    .option("--json", "one JSON object (instances[]: id, az, pid, port, healthy, ...)")
    .action(async (opts: { stateDir: string; json?: boolean }) => {
      const status = await StackClient.require(opts.stateDir).status();
      if (opts.json) console.log(JSON.stringify(status, null, 2));
      else printStatusTable(status);
    });

  const drill = program.command("drill").description("break the stack on purpose and report what users saw");
  const drillCommand = (name: string, description: string) =>
    drill
      .command(name)
      .description(description)
      .addOption(configOption())
      .addOption(envOption())
      .addOption(stateDirOption())
      .option("-r, --rate <n>", "requests per second during the drill", parsePositive, drillDefaults.rate)
      .option("--json", "print the report as JSON");
  type DrillCliOptions = CommonOptions & { rate: number; json?: boolean };
  const runDrill = async (
    opts: DrillCliOptions,
    drillFn: (client: StackClient, progress?: (m: string) => void) => Promise<DrillReport>,
    details: (report: DrillReport) => string[],
    passed: (report: DrillReport) => boolean,
  ) => {
    const report = await withStack(opts, Boolean(opts.json), (client) =>
      drillFn(client, opts.json ? undefined : (m) => console.error(`  … ${m}`)),
    );
    printReport(report, Boolean(opts.json), details(report));
    if (!passed(report)) process.exitCode = 1;
  };
  const basics = (r: DrillReport) => r.failed === 0 && r.recoverySeconds !== null && r.counterContinuous;

  drillCommand(
    "kill-instance",
    "kill one healthy instance under steady traffic; report failures, recovery time and counter",
  )
    .addOption(
      new Option("-s, --signal <signal>", "signal sent to the instance")
        .choices(["KILL", "TERM"])
        .default("KILL"),
    )
    .action((opts: DrillCliOptions & { signal: "KILL" | "TERM" }) =>
      runDrill(
        opts,
        (client, onProgress) =>
          killInstanceDrill(client, { signal: opts.signal, rate: opts.rate, onProgress }),
        (report) => {
          const victim = report.victim as { id: string; az: string };
          const replacement = report.replacement as { id: string; az: string } | null;
          return [
            `killed               ${victim.id} in ${victim.az} with ${report.signal}`,
            `replacement          ${replacement ? `${replacement.id} in ${replacement.az}` : "none"}`,
          ];
        },
        basics,
      ),
    );

  drillCommand("az-outage", "take every instance of one availability zone down at once; the group rebalances")
    .option("--az <az>", "the zone to take down (default: the one with the most healthy instances)")
    .action((opts: DrillCliOptions & { az?: string }) =>
      runDrill(
        opts,
        (client, onProgress) => azOutageDrill(client, { az: opts.az, rate: opts.rate, onProgress }),
        (report) => [
          `zone down            ${report.az} (${report.instancesLost} instance(s) lost)`,
          `zones after          ${(report.zonesAfter as string[]).join(", ")}`,
        ],
        (r) => basics(r) && r.launchedInImpairedAz === 0,
      ),
    );

  drillCommand(
    "cpu-spike",
    "CPU load beyond the group's capacity: it scales out, then back in when the load stops",
  ).action((opts: DrillCliOptions) =>
    runDrill(
      opts,
      async (client, onProgress) =>
        cpuSpikeDrill(client, {
          rate: opts.rate,
          onProgress,
          targetCpuPercent: (await loadStack(opts.config, opts.env)).scaling.targetCpuPercent,
        }),
      (report) => [
        `capacity             ${report.startDesired} → ${report.peakDesired} → ${report.scaleInSeconds === null ? "not scaled in" : report.startDesired}`,
        `scale-out in service ${report.recoverySeconds === null ? "never" : `${report.recoverySeconds.toFixed(2)} s after the load started`}`,
        `scale-in             ${report.scaleInSeconds === null ? "never" : `${(report.scaleInSeconds as number).toFixed(2)} s after the load stopped`}`,
      ],
      (r) => basics(r) && r.scaleInSeconds !== null,
    ),
  );

  drillCommand(
    "redis-failover",
    "kill the Redis primary; Sentinel promotes the replica; report the write outage",
  ).action((opts: DrillCliOptions) =>
    runDrill(
      opts,
      (client, onProgress) => redisFailoverDrill(client, { rate: opts.rate, onProgress }),
      (report) => {
        const killed = report.killedPrimary as { az: string };
        const promoted = report.newPrimary as { az: string } | null;
        return [
          `killed primary       in ${killed.az}`,
          `new primary          ${promoted ? `in ${promoted.az}` : "none"}`,
          `writes failed for    ${(report.writeOutageSeconds as number).toFixed(2)} s (${report.failed} requests answered 503)`,
        ];
      },
      (r) => r.recoverySeconds !== null && r.counterContinuous && (r.writeOutageSeconds as number) <= 5,
    ),
  );

  drillCommand(
    "region-outage",
    "take the primary region down, then bring it back: DNS failover and failback",
  ).action((opts: DrillCliOptions) =>
    runDrill(
      opts,
      (client, onProgress) => regionOutageDrill(client, { rate: opts.rate, onProgress }),
      (report) => [
        `regions              ${report.primaryRegion} → ${report.secondaryRegion} → ${report.primaryRegion}`,
        `clients saw failures ${(report.outageSeconds as number).toFixed(2)} s (DNS answers: ${(report.resolvedAddresses as string[]).join(" → ")})`,
        `secondary            started by the alarm: ${report.secondaryStartedByAlarm ? "yes" : "NO"}; back to standby (${report.standbyCapacity}): ${report.secondaryBackToStandby ? "yes" : "NO"}`,
        `notifications        ${(report.notifications as string[]).join("; ") || "none"}`,
      ],
      (r) =>
        r.recoverySeconds !== null &&
        r.counterContinuous &&
        (r.outageSeconds as number) <= 5 &&
        Boolean(r.secondaryStartedByAlarm) &&
        Boolean(r.failedBack) &&
        Boolean(r.secondaryBackToStandby),
    ),
  );

  registerAwsCommands(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof StayupError) {
      console.error(`error: ${error.message}`);
      if (error.hint) console.error(`  fix: ${error.hint}`);
    } else {
      console.error(error);
    }
    process.exitCode = 1;
  }
}
