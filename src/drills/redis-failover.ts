import type { StackClient } from "../local/control-plane/client.ts";
import type { TimedStackEvent } from "../local/events/bus.ts";
import { StayupError } from "../shared/errors.ts";
import { SENTINEL_QUORUM } from "../stack/derived.ts";
import { SENTINEL_PING_PERIOD_MS } from "../stack/region-failover-timing.ts";
import { type DrillOptions, DrillRun, drillDefaults } from "./harness.ts";
import { counterTarget, type DrillReport, recoveredTarget, type DrillTarget } from "./report.ts";
import { defineDrill } from "./module.ts";
import { loadUndici, parseAnswer } from "./traffic.ts";

/**
 * Kills the Redis primary under steady traffic. The region's Sentinel promotes the replica in another AZ,
 * the instances hold and retry the writes meanwhile, and the dead node comes back as a replica.
 * Reports failed requests (target 0), the p99 latency during the failover, and `acknowledgedLost`:
 * how far the count after recovery fell below the highest count any client saw (target 0).
 */
export async function redisFailoverDrill(
  client: StackClient,
  opts: Partial<DrillOptions> = {},
): Promise<DrillReport> {
  const o = { ...drillDefaults, ...opts };
  const run = await DrillRun.start(client, o);
  const first = run.before.redis.nodes?.find((n) => n.role === "primary");
  if (!first?.pid) {
    await run.finish();
    throw new StayupError(
      "this stack runs a single Redis node: there is no replica to fail over to",
      "set redis.multiAz: true for the environment in stayup.config.ts (or use --env prod)",
    );
  }
  // Break one thing at a time: a replica still resyncing after an earlier failover is a double fault.
  for (const replica of run.before.redis.nodes?.filter((n) => n.role === "replica" && !n.inSync) ?? []) {
    run.progress(`waiting for the replica in ${replica.az} to be in sync before breaking anything`);
    await run.waitFor(
      (events) => events.find((e) => e.type === "redis.replica-in-sync" && e.port === replica.port),
      o.recoveryTimeoutMs,
    );
  }
  // The primary as it is now, not as it was when the drill started: after the steady phase and the
  // wait for replicas, a failover meanwhile (Sentinel failing over a starved primary) would make the
  // node read then a replica, and the drill would kill the wrong node and see no promotion.
  const current = (await client.status()).redis.nodes?.find((n) => n.role === "primary");
  const primary = current?.pid ? { ...current, pid: current.pid } : { ...first, pid: first.pid };
  if (primary.port !== first.port) {
    run.progress(
      `the primary moved from ${first.az} to ${primary.az} since the drill started (a failover meanwhile)`,
    );
  }
  const killedAt = Date.now();
  run.progress(`SIGKILL → Redis primary in ${primary.az} (pid ${primary.pid}, port ${primary.port})`);
  run.mark("fault", `SIGKILL → Redis primary in ${primary.az}`, killedAt);
  process.kill(primary.pid, "SIGKILL");
  const failover = await run.waitFor(
    (events) => events.find((e) => e.type === "redis.failover" && Date.parse(e.time) >= killedAt),
    o.recoveryTimeoutMs,
  );
  const recoverySeconds = failover ? (Date.parse(failover.time) - killedAt) / 1000 : null;
  if (failover?.type === "redis.failover")
    run.mark("recovery", `replica in ${failover.toAz} promoted`, Date.parse(failover.time));
  run.progress(
    failover?.type === "redis.failover"
      ? `Sentinel promoted the replica in ${failover.toAz} after ${recoverySeconds?.toFixed(2)} s`
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
  if (rejoined) run.mark("recovery", "old primary back as an in-sync replica", Date.parse(rejoined.time));
  if (rejoined)
    run.progress(`the old primary is back as an in-sync replica after ${redundancySeconds?.toFixed(2)} s`);
  const result = await run.finish();
  const lastFailure = Math.max(...result.failureTimes.filter((t) => t >= killedAt), killedAt);
  const writeOutageSeconds = result.failureTimes.some((t) => t >= killedAt)
    ? (lastFailure - killedAt) / 1000
    : 0;
  // What clients waited: requests sent before the kill, and those sent until the promotion (held by
  // the instances and retried against the new primary).
  const promotedAt = failover ? Date.parse(failover.time) : Number.POSITIVE_INFINITY;
  const p99BeforeFailoverMs = percentile(
    result.latencies.filter((l) => l.sentAt < killedAt).map((l) => l.ms),
    0.99,
  );
  const p99DuringFailoverMs = percentile(
    result.latencies.filter((l) => l.sentAt >= killedAt && l.sentAt <= promotedAt).map((l) => l.ms),
    0.99,
  );
  // No acknowledged count lost: the count after recovery is above the highest any client saw.
  const highestCountSeen = result.lastCount ?? 0;
  // The counter's page increments (the next count is one above the last kept); a probe only reads.
  const consistency = run.plan.consistency;
  const probePath =
    typeof consistency === "object" ? consistency.probePath : consistency === "counter" ? "/" : undefined;
  const countAfterRecovery =
    probePath === undefined
      ? undefined
      : await readCountAfterRecovery(`${client.state.listener}${probePath}`, o.recoveryTimeoutMs, (ms) =>
          run.sleep(ms),
        );
  const increments =
    consistency === "counter" || (typeof consistency === "object" && consistency.probePath === run.plan.path);
  const acknowledgedLost =
    countAfterRecovery === undefined
      ? null
      : Math.max(0, highestCountSeen - (increments ? countAfterRecovery - 1 : countAfterRecovery));
  if (probePath !== undefined)
    run.progress(
      `highest count a client saw ${highestCountSeen}; after recovery ${probePath} answered ${countAfterRecovery ?? "nothing"}`,
    );
  return run.report(
    "redis-failover",
    result,
    recoverySeconds,
    {
      writeOutageSeconds,
      acknowledgedLost,
      highestCountSeen,
      countAfterRecovery: countAfterRecovery ?? null,
      p99BeforeFailoverMs,
      p99DuringFailoverMs,
      killedPrimary: { az: primary.az, port: primary.port },
      newPrimary: failover?.type === "redis.failover" ? { az: failover.toAz, port: failover.toPort } : null,
      // No promotion: why, in Sentinel's words (its decisions and its view of the nodes).
      ...(failover ? {} : whyNotPromoted(run.events, killedAt)),
      // A second failover after the first (the new primary called down): when, by whom, and why.
      ...whyFailedOverAgain(run.events, killedAt),
      oldPrimaryRejoinedAsReplica: Boolean(rejoined),
      redundancyRestoredSeconds: redundancySeconds,
      failureWindows: run.failureWindows(result),
    },
    redisFailoverTargets,
  );
}

/** This drill's targets (issue #12): no failed request, no acknowledged count lost, recovered. */
export const redisFailoverTargets = (r: DrillReport): DrillTarget[] => [
  {
    target: "no failed request (writes held and retried during the failover)",
    passed: r.failed === 0,
    actual: `${r.failed} failed of ${r.requests}`,
  },
  r.notMeasured?.acknowledgedLost !== undefined
    ? {
        target: "no acknowledged count lost",
        passed: true,
        actual: `not measured: ${r.notMeasured.acknowledgedLost}`,
      }
    : {
        target: "no acknowledged count lost",
        passed: r.acknowledgedLost === 0,
        actual:
          r.acknowledgedLost === null || r.acknowledgedLost === undefined
            ? "unknown"
            : `${r.acknowledgedLost as number} lost`,
      },
  recoveredTarget(r),
  counterTarget(r),
];

/**
 * Why Sentinel promoted no replica after the primary was killed, from what they published
 * (redis.sentinel events) and their view of the nodes when the old primary was restarted
 * (redis.sentinel-view): the first cause that applies, in the order a failover goes through.
 */
export function whyNotPromoted(
  events: readonly TimedStackEvent[],
  killedAt: number,
): { whyNotPromoted: string; sentinelDecisions: string[]; sentinelView: Record<string, unknown> | null } {
  const after = events.filter((e) => Date.parse(e.time) >= killedAt);
  const decisions = after.flatMap((e) => (e.type === "redis.sentinel" ? [e] : []));
  const view = after.find((e) => e.type === "redis.sentinel-view");
  // About the primary: a replica's +sdown (one restarted, say) is not the primary seen down.
  const aboutReplica = (d: { event: string; detail: string }) =>
    /^[+-][so]down$/.test(d.event) && !d.detail.startsWith("master ");
  const seen = (name: string | RegExp) =>
    decisions.filter(
      (d) => !aboutReplica(d) && (typeof name === "string" ? d.event === name : name.test(d.event)),
    );
  const who = (list: { sentinel: string }[]) => [...new Set(list.map((d) => d.sentinel))].join(", ");
  const replicas = view?.type === "redis.sentinel-view" ? view.replicas : [];
  const replicaState = replicas
    .map((r) => `replica ${r.port ?? "?"}: ${r.flags ?? "?"}, link ${r["master-link-status"] ?? "?"}`)
    .join("; ");
  let why: string;
  if (seen("exited").length > 0 && seen("+odown").length === 0) {
    why = `the region's Sentinel (${who(seen("exited"))}) exited before it agreed the primary was down${seen("restarted").length ? ": the runtime started it again, too late for this failover" : " and was not running again"}`;
  } else if (seen("+tilt").length > 0) {
    why = `a Sentinel (${who(seen("+tilt"))}) entered TILT mode: its clock jumped (the machine too busy to run it on time), and in TILT it takes no action for 30 s`;
  } else if (seen("+sdown").length === 0) {
    why = "no Sentinel saw the primary down (+sdown) before it came back: none reported it unreachable";
  } else if (seen("+odown").length === 0) {
    why = `the Sentinels did not agree the primary was down: +sdown from ${who(seen("+sdown"))}, but no +odown (the quorum of ${SENTINEL_QUORUM} was not reached)`;
  } else if (seen(/^-failover-abort-no-good-slave$|^-?no-good-slave$/).length > 0) {
    why = `no replica was fit to promote (-failover-abort-no-good-slave): Sentinel skips a replica that is down, disconnected from the primary too long, or of priority 0${replicaState ? ` (${replicaState})` : ""}`;
  } else if (seen("-failover-abort-not-elected").length > 0 || seen("+elected-leader").length === 0) {
    why = `the Sentinels did not elect a leader to run the failover${seen("+try-failover").length ? ` (+try-failover from ${who(seen("+try-failover"))}, no +elected-leader)` : " (no +try-failover)"}; the next try comes only after twice failover-timeout`;
  } else if (seen(/^-failover-abort-/).length > 0) {
    why = `the failover was aborted: ${[...new Set(seen(/^-failover-abort-/).map((d) => d.event))].join(", ")}`;
  } else if (seen("-odown").length > 0 || seen("-sdown").length > 0) {
    why =
      "the old primary was back before the failover completed (-odown/-sdown): Sentinel keeps a primary that answers";
  } else {
    why = "the Sentinels started a failover that did not complete before the drill's timeout";
  }
  return {
    whyNotPromoted: why,
    sentinelDecisions: decisions.map((d) => `${d.time} ${d.sentinel} ${d.event} ${d.detail}`),
    sentinelView:
      view?.type === "redis.sentinel-view"
        ? { reason: view.reason, master: view.master, replicas: view.replicas }
        : null,
  };
}

/** The port in a Sentinel event's detail about a primary ("master <name> <ip> <port>..."). */
const masterPort = (detail: string): number | undefined => {
  const port = /^master \S+ \S+ (\d+)/.exec(detail)?.[1];
  return port === undefined ? undefined : Number(port);
};

/**
 * When the drill's failover was followed by another (Sentinel failed over the primary it had just
 * promoted, a live one): the failovers, and why the new primary was called down, from the
 * Sentinels' events (+sdown of it, and -sdown when it answered them again) and what the runtime
 * gathered at that moment (redis.primary-seen-down: the Sentinel's link to it, the node's latency
 * spikes and log). Empty when there was one failover or none.
 */
export function whyFailedOverAgain(
  events: readonly TimedStackEvent[],
  killedAt: number,
): { failovers?: string[]; whyFailedOverAgain?: string } {
  const after = events.filter((e) => Date.parse(e.time) >= killedAt);
  const failovers = after.flatMap((e) => (e.type === "redis.failover" ? [e] : []));
  const [first, second] = failovers;
  if (!first || !second) return {};
  const switchedAt = Date.parse(first.time);
  const secs = (t: string) => ((Date.parse(t) - switchedAt) / 1000).toFixed(2);
  const aboutNew = (e: TimedStackEvent, event: string) =>
    e.type === "redis.sentinel" &&
    e.event === event &&
    masterPort(e.detail) === first.toPort &&
    Date.parse(e.time) >= switchedAt;
  const downs = after.flatMap((e) => (e.type === "redis.sentinel" && aboutNew(e, "+sdown") ? [e] : []));
  const backs = after.flatMap((e) => (e.type === "redis.sentinel" && aboutNew(e, "-sdown") ? [e] : []));
  const seen = after.flatMap((e) =>
    e.type === "redis.primary-seen-down" && e.port === first.toPort ? [e] : [],
  );
  const parts: string[] = [
    `Sentinel failed over the new primary in ${first.toAz} (port ${first.toPort}) ${secs(second.time)} s after promoting it, to ${second.toAz} (port ${second.toPort})`,
  ];
  if (downs.length > 0) {
    parts.push(
      `called down (+sdown) by ${downs.map((d) => `${d.sentinel} at +${secs(d.time)} s`).join(", ")}${backs.length ? `, answering again (-sdown) at +${secs((backs[0] as TimedStackEvent).time)} s: a failover once begun is not called off` : ""}`,
    );
  } else {
    parts.push("no Sentinel event about it reached the runtime (+sdown)");
  }
  for (const s of seen) {
    const saw = s.sentinelSaw;
    // SENTINEL MASTER's times are ms before the answer: role-reported-time counts from the switch
    // (Sentinel resets the primary's record there), last-ok-ping-reply from its last PONG.
    const sinceSwitch = Number(saw["role-reported-time"]);
    const sinceReply = Number(saw["last-ok-ping-reply"]);
    const downAfter = Number(saw["down-after-milliseconds"]);
    const firstReply = sinceSwitch - sinceReply;
    const link =
      Number.isFinite(firstReply) && sinceReply < sinceSwitch
        ? `its first good reply from the new primary came ${firstReply} ms after the switch${firstReply > downAfter ? `, past down-after-milliseconds (${downAfter} ms)` : ""}`
        : `flags ${saw.flags ?? "?"}, last good reply ${saw["last-ok-ping-reply"] ?? "?"} ms ago`;
    parts.push(
      `${s.sentinel}: ${link}; the node's latency spikes: ${s.latency.join("; ") || "none (no stall of 100 ms or more)"}`,
    );
  }
  if (
    seen.length > 0 &&
    seen.every((s) => s.latency.length === 0) &&
    seen.some(
      (s) =>
        Number(s.sentinelSaw["role-reported-time"]) - Number(s.sentinelSaw["last-ok-ping-reply"]) >
        Number(s.sentinelSaw["down-after-milliseconds"]),
    )
  ) {
    parts.push(
      `the node did not stall: the Sentinel reached it late (it reconnects at most once per its ${SENTINEL_PING_PERIOD_MS / 1000} s ping period, counted from its last try at the dead primary, while down-after counts from the switch)`,
    );
  }
  return {
    failovers: failovers.map(
      (f) => `${f.time} ${f.fromAz} (port ${f.fromPort}) → ${f.toAz} (port ${f.toPort})`,
    ),
    whyFailedOverAgain: `${parts.join("; ")}.`,
  };
}

/** The p-th percentile (nearest rank) in ms, or null without samples. */
function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? null;
}

/** One more count (or probe reading) through the listener once the traffic stopped (retried until it answers 200). */
async function readCountAfterRecovery(
  url: string,
  timeoutMs: number,
  pause: (ms: number) => Promise<void>,
): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const { request } = await loadUndici();
      const res = await request(url, { headers: { accept: "application/json" } });
      const body = parseAnswer(await res.body.text());
      if (res.statusCode === 200 && body.number !== undefined) return body.number;
    } catch {
      // not recovered yet
    }
    await pause(200);
  }
  return undefined;
}

export const redisFailover = defineDrill({
  name: "redis-failover",
  description:
    "kill the Redis primary under traffic; Sentinel promotes a replica; report failures, p99 and acknowledgedLost",
  topologies: {
    "load-balanced": true,
    "single-instance": {
      unsupported: "the instance runs its own Redis on the data volume: there is no replica to fail over to",
      instead:
        "run `stayup drill kill-instance --topology single-instance` (the count survives on the volume)",
    },
    // The tasks share the region's Redis as instances do.
    ecs: true,
  },
  run: ({ client, rate, onProgress, harness }) =>
    redisFailoverDrill(client, { ...harness, rate, onProgress }),
  details: (report) => {
    const killed = report.killedPrimary as { az: string };
    const promoted = report.newPrimary as { az: string } | null;
    return [
      `killed primary       in ${killed.az}`,
      `new primary          ${promoted ? `in ${promoted.az}` : `none: ${String(report.whyNotPromoted ?? "Sentinel published nothing")}`}`,
      ...(report.whyFailedOverAgain ? [`failed over again    ${String(report.whyFailedOverAgain)}`] : []),
      `writes failed for    ${(report.writeOutageSeconds as number).toFixed(2)} s (${report.failed} requests answered 503)`,
      `p99 latency          ${report.p99BeforeFailoverMs ?? "-"} ms before, ${report.p99DuringFailoverMs ?? "-"} ms during the failover (held and retried)`,
      report.notMeasured?.acknowledgedLost !== undefined
        ? `acknowledged lost    not measured: ${report.notMeasured.acknowledgedLost}`
        : `acknowledged lost    ${report.acknowledgedLost ?? "unknown"} (highest count seen ${report.highestCountSeen}, next after recovery ${report.countAfterRecovery ?? "-"})`,
    ];
  },
  passed: (r) => redisFailoverTargets(r).every((t) => t.passed),
});
