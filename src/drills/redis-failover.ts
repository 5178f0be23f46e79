import type { StackClient } from "../local/control-plane/client.ts";
import { StayupError } from "../shared/errors.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import type { DrillReport } from "./report.ts";

/**
 * Kills the Redis primary under steady traffic. The Sentinels promote the replica in the other AZ,
 * the instances follow without a restart, and the dead node comes back as a replica. Reports how
 * long writes failed and whether the count ever went backwards.
 */
export async function redisFailoverDrill(
  client: StackClient,
  opts: Partial<DrillOptions> = {},
): Promise<DrillReport> {
  const o = { ...drillDefaults, ...opts };
  const run = await DrillRun.start(client, o);
  const primary = run.before.redis.nodes?.find((n) => n.role === "primary");
  if (!primary?.pid) {
    await run.finish();
    throw new StayupError(
      "this stack runs a single Redis node: there is no replica to fail over to",
      "set redis.multiAz: true for the environment in stayup.config.ts (or use --env prod)",
    );
  }
  // Break one thing at a time: a replica still resyncing after an earlier failover is a double fault.
  const replica = run.before.redis.nodes?.find((n) => n.role === "replica");
  if (replica && !replica.inSync) {
    run.progress(`waiting for the replica in ${replica.az} to be in sync before breaking anything`);
    await run.waitFor(
      (events) => events.find((e) => e.type === "redis.replica-in-sync" && e.port === replica.port),
      o.recoveryTimeoutMs,
    );
  }
  const killedAt = Date.now();
  run.progress(`SIGKILL → Redis primary in ${primary.az} (pid ${primary.pid}, port ${primary.port})`);
  process.kill(primary.pid, "SIGKILL");
  const failover = await run.waitFor(
    (events) => events.find((e) => e.type === "redis.failover" && Date.parse(e.time) >= killedAt),
    o.recoveryTimeoutMs,
  );
  const recoverySeconds = failover ? (Date.parse(failover.time) - killedAt) / 1000 : null;
  run.progress(
    failover?.type === "redis.failover"
      ? `Sentinels promoted the replica in ${failover.toAz} after ${recoverySeconds?.toFixed(2)} s`
      : "no failover",
  );
  // Redundancy restored: the old primary is back as a replica holding every write.
  const rejoined = await run.waitFor(
    (events) =>
      events.find(
        (e) =>
          e.type === "redis.replica-in-sync" && e.port === primary.port && Date.parse(e.time) >= killedAt,
      ),
    o.recoveryTimeoutMs,
  );
  const redundancySeconds = rejoined ? (Date.parse(rejoined.time) - killedAt) / 1000 : null;
  if (rejoined)
    run.progress(`the old primary is back as an in-sync replica after ${redundancySeconds?.toFixed(2)} s`);
  const result = await run.finish();
  const lastFailure = Math.max(...result.failureTimes.filter((t) => t >= killedAt), killedAt);
  const writeOutageSeconds = result.failureTimes.some((t) => t >= killedAt)
    ? (lastFailure - killedAt) / 1000
    : 0;
  return run.report("redis-failover", result, recoverySeconds, {
    writeOutageSeconds,
    killedPrimary: { az: primary.az, port: primary.port },
    newPrimary: failover?.type === "redis.failover" ? { az: failover.toAz, port: failover.toPort } : null,
    oldPrimaryRejoinedAsReplica: Boolean(rejoined),
    redundancyRestoredSeconds: redundancySeconds,
    failureWindows: DrillRun.failureWindows(result, killedAt),
  });
}
