import { describeFaults } from "../faults/index.ts";
import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import type { EcsStatus } from "../../../local/ecs/status.ts";
import type { StackStatus } from "../../../local/runtime.ts";
import type { StayupError } from "../../../shared/errors.ts";
import { formatTable } from "../../../shared/table.ts";
import { stateDirOption } from "../../options.ts";

export function printStatusTable(status: StackStatus): void {
  console.log(
    `${status.name} (${status.environment}, topology ${status.topology})   redis ${status.redis.url}`,
  );
  if (status.dashboard) console.log(`dashboard ${status.dashboard}`);
  if (status.dns) {
    console.log(
      `dns ${status.dns.name} on udp://${status.dns.server} → ${status.dns.answer} (${status.dns.primaryHealthy ? "primary healthy" : "FAILED OVER"}${status.dns.secondaryHealthy === false ? ", secondary UNHEALTHY" : ""}); a region is called down after ${status.dns.regionDetectionMs / 1000} s of failed checks, past its ${status.dns.inRegionBudgetMs / 1000} s in-region recovery budget`,
    );
  }
  const single = status.singleInstance;
  if (single) {
    console.log(
      `address ${single.address} → ${single.associatedWith ?? "(no instance: not answering)"}   volume ${single.volume.volumeId} attached to ${single.volume.attachedTo ?? "(nothing)"} (${single.volume.dir})`,
    );
  }
  const rows = [["REGION", "INSTANCE", "AZ", "PID", "PORT", "STATE", "HEALTH", "VERSION"]];
  for (const region of status.regions) {
    const g = region.group;
    console.log(
      `${region.role} ${region.name}: ${region.listener}${region.down ? " (DOWN)" : ""}   group ${g.inService}/${g.desired} in service (min ${g.min}, max ${g.max})${region.version ? `   version ${region.version}` : ""}`,
    );
    for (const i of region.instances)
      rows.push([
        region.name,
        i.id,
        i.az,
        String(i.pid),
        String(i.port),
        i.state,
        i.health,
        i.version ?? "-",
      ]);
  }
  console.log(formatTable(rows));
  if (status.ecs) printContainerInstances(status.ecs);
  printFaults(status);
}

/** Faults in force (a drill interrupted, or one still running), with what clears them. */
function printFaults(status: StackStatus): void {
  const lines = describeFaults(status.faults ?? []);
  if (lines.length > 0) console.log(`\n${lines.join("\n")}`);
}

/** Topology ecs: each container instance with its free capacity and the tasks placed on it. */
function printContainerInstances(ecs: EcsStatus): void {
  const s = ecs.service;
  console.log(
    `ecs service ${s.healthy}/${s.desired} tasks healthy (${s.running} running, ${s.unplaced} unplaced), placement ${ecs.placement}, cluster target ${ecs.clusterTargetUtilizationPercent} %`,
  );
  const rows = [["CONTAINER INSTANCE", "AZ", "FREE CPU", "FREE MEMORY", "TASKS"]];
  for (const ci of ecs.containerInstances) {
    rows.push([
      ci.id,
      ci.az,
      `${ci.free.cpuUnits}/${ci.registered.cpuUnits}`,
      `${ci.free.memoryMiB}/${ci.registered.memoryMiB} MiB`,
      ci.tasks.map((t) => `${t.id.slice(0, 8)} (${t.health})`).join(", ") || "-",
    ]);
  }
  console.log(formatTable(rows));
}

export interface StatusOptions {
  stateDir: string;
  json?: boolean;
}

/** `stayup status`: the running stack's topology, listener, group capacity, instances and their health. */
export async function status(opts: StatusOptions): Promise<StackStatus> {
  let current: StackStatus;
  try {
    current = await StackClient.require(opts.stateDir).status();
  } catch (error) {
    // A script reading --json gets JSON either way: the error and its fix, then exit code 1.
    if (opts.json) {
      const e = error as StayupError;
      console.log(
        JSON.stringify({ running: false, error: e.message, ...(e.hint ? { fix: e.hint } : {}) }, null, 2),
      );
    }
    throw error;
  }
  if (opts.json) console.log(JSON.stringify(current, null, 2));
  else printStatusTable(current);
  return current;
}

export function register(program: Command): void {
  program
    .command("status")
    .description("show the running stack: topology, listener, group capacity, instances and their health")
    .addOption(stateDirOption())
    .option("--json", "one JSON object (topology, instances[]: id, az, pid, port, healthy, ...)")
    .action(async (opts: StatusOptions) => {
      await status(opts);
    });
}
