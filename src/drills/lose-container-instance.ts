import type { StackClient } from "../local/control-plane/client.ts";
import { StayupError } from "../shared/errors.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import { basicVerdict, defineDrill } from "./module.ts";
import type { DrillReport } from "./report.ts";

/**
 * Loses one container instance (the one holding the most tasks) under steady traffic: every task
 * on it dies at once. Binpack (dev) puts every task there; spread (prod) only one.
 */
export async function loseContainerInstanceDrill(
  client: StackClient,
  opts: Partial<DrillOptions> = {},
): Promise<DrillReport> {
  const o = { ...drillDefaults, ...opts };
  const status = await client.status();
  if (!status.ecs) {
    throw new StayupError(
      "the running stack has no container instances",
      "start it with --topology ecs (or run the drill with --topology ecs and no stack running)",
    );
  }
  const run = await DrillRun.start(client, o);
  const ecs = run.before.ecs ?? status.ecs;
  const victim = [...ecs.containerInstances].sort((a, b) => b.tasks.length - a.tasks.length)[0];
  if (!victim || victim.tasks.length === 0) {
    await run.finish();
    throw new StayupError(
      "no container instance runs a task",
      "wait until `stayup status` shows running tasks",
    );
  }
  const tasksBefore = ecs.containerInstances.reduce((n, c) => n + c.tasks.length, 0);
  const lostAt = Date.now();
  run.progress(
    `losing container instance ${victim.id} (${victim.az}) with ${victim.tasks.length} of ${tasksBefore} tasks`,
  );
  run.mark(
    "fault",
    `container instance ${victim.id} in ${victim.az} lost (${victim.tasks.length} task(s))`,
    lostAt,
  );
  await client.fault("lose-container-instance", { containerInstance: victim.id });
  const desired = ecs.service.desired;
  const recoveredAt = await run.waitFor(run.capacityRestored(lostAt, desired), o.recoveryTimeoutMs);
  const recoverySeconds = recoveredAt === undefined ? null : (recoveredAt - lostAt) / 1000;
  // Each replacement task in rotation, and each container instance launched in the lost one's place.
  const tasksBeforeIds = new Set(ecs.containerInstances.flatMap((c) => c.tasks.map((t) => t.id)));
  const instancesBeforeIds = new Set(ecs.containerInstances.map((c) => c.id));
  for (const e of run.events) {
    const t = Date.parse(e.time);
    if (t < lostAt || (recoveredAt !== undefined && t > recoveredAt)) continue;
    if (e.type === "target.healthy" && !tasksBeforeIds.has(e.instanceId))
      run.mark("recovery", `task ${e.instanceId} in rotation (${e.az})`, t);
    if (e.type === "container-instance.registered" && !instancesBeforeIds.has(e.containerInstanceId))
      run.mark("recovery", `container instance ${e.containerInstanceId} registered (${e.az})`, t);
  }
  if (recoveredAt !== undefined) run.mark("recovery", `${desired} tasks healthy again`, recoveredAt);
  run.progress(
    recoverySeconds === null
      ? `fewer than ${desired} tasks healthy after ${o.recoveryTimeoutMs / 1000} s`
      : `${desired} tasks running and healthy again after ${recoverySeconds.toFixed(2)} s`,
  );
  const result = await run.finish();
  return run.report("lose-container-instance", result, recoverySeconds, {
    placement: ecs.placement,
    tasksLost: victim.tasks.length,
    tasksBefore,
    everyTaskOnLostInstance: victim.tasks.length === tasksBefore,
    containerInstance: { id: victim.id, az: victim.az, taskIds: victim.tasks.map((t) => t.id) },
    containerInstancesBefore: ecs.containerInstances.map((c) => ({
      id: c.id,
      az: c.az,
      tasks: c.tasks.length,
    })),
  });
}

export const loseContainerInstance = defineDrill<Record<string, never>>({
  name: "lose-container-instance",
  description:
    "lose the container instance with the most tasks under traffic; report failures, tasks lost and recovery",
  topologies: {
    "load-balanced": {
      unsupported: "there are no container instances in this topology",
      instead: "run `stayup drill kill-instance`, or this drill with `--topology ecs`",
    },
    "single-instance": {
      unsupported: "there are no container instances in this topology",
      instead:
        "run `stayup drill kill-instance --topology single-instance`, or this drill with `--topology ecs`",
    },
    ecs: true,
  },
  run: ({ client, rate, onProgress, harness }) =>
    loseContainerInstanceDrill(client, { ...harness, rate, onProgress }),
  details: (report) => {
    const ci = report.containerInstance as { id: string; az: string };
    return [
      `placement            ${String(report.placement)}`,
      `lost                 container instance ${ci.id} in ${ci.az}`,
      `tasks lost           ${String(report.tasksLost)} of ${String(report.tasksBefore)}${report.everyTaskOnLostInstance ? " (every task was on it)" : ""}`,
    ];
  },
  passed: basicVerdict,
});
