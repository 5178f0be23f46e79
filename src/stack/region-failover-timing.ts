/**
 * When a region fails over, in one place for both renderers: how long a recovery inside the primary
 * region may take (a Redis failover, an instance or a zone lost) before anything moves to another
 * region, and how long the region health check takes to call the region down. The schema refuses a
 * description whose detection is not longer than that budget, the local failover controller and the
 * Route 53 health check use the same threshold and interval, and `stayup check` prints both.
 *
 * No import from schema.ts (the schema validates with this): the input is the few settings read.
 */

/**
 * A figure the model and the renderers take from outside the description: AWS publishes none, so
 * each is an assumption, stated with its source (or why there is none) and where to check it on a
 * deployed stack. Every such figure lives here, once; `stayup check` prints them all.
 */
export interface TimingAssumption {
  seconds: number;
  source: string;
}

export const AWS_TIMING_ASSUMPTIONS = {
  /** An ElastiCache Multi-AZ failover inside a region: detection, promotion, the endpoint's DNS. */
  elastiCacheFailover: {
    seconds: 60,
    source:
      'ElastiCache Multi-AZ failover: AWS promises "some downtime", "minimized", and publishes no figure (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/AutoFailover.html); stayup budgets a minute for detection, promotion and the primary endpoint\'s DNS change (the events of the replication group show it)',
  },
  lambdaAndGroup: {
    seconds: 10,
    source:
      "the alarm invokes the failover Lambda asynchronously; UpdateAutoScalingGroup returns at once and the group starts a launch within seconds (EC2 Auto Scaling, scaling activities; the Lambda's log /stayup/<name>-<env>/failover)",
  },
  instanceBoot: {
    seconds: 45,
    source:
      "EC2 launch to cloud-init running the user data on Amazon Linux 2023 (not published by AWS; typical for t3/t4g; /var/log/cloud-init-output.log on a web instance)",
  },
  bundleInstall: {
    seconds: 45,
    source:
      "the user data (src/aws/web/launch-template.ts): dnf install nodejs20 and the CloudWatch agent, the bundle from S3, the settings from Parameter Store, the service started (/var/log/stayup-boot.log on a web instance)",
  },
  /**
   * How long the failback Lambda waits, within one run, for the primary region's Global Datastore
   * member to be `associated` (caught up) before it gives the run up to Lambda's retries.
   */
  globalDatastoreCatchUp: {
    seconds: 600,
    source:
      "a rejoining Global Datastore member's resynchronisation: AWS publishes no figure (ElastiCache user guide, \"Replication across AWS Regions using global datastores\"); 10 minutes within Lambda's 15-minute cap, twice more on Lambda's retries (the failback Lambda's log /stayup/<name>-<env>/failback)",
  },
} satisfies Record<string, TimingAssumption>;

/** The ElastiCache failover budget (AWS_TIMING_ASSUMPTIONS.elastiCacheFailover). */
export const ELASTICACHE_FAILOVER_BUDGET_SECONDS = AWS_TIMING_ASSUMPTIONS.elastiCacheFailover.seconds;

/** The failback Lambda's timeout with a Global Datastore: its catch-up wait and a minute to act. */
export const FAILBACK_LAMBDA_TIMEOUT_SECONDS = AWS_TIMING_ASSUMPTIONS.globalDatastoreCatchUp.seconds + 60;

/**
 * Redis Sentinel's ping period (SENTINEL_PING_PERIOD in sentinel.c, 1 s in Redis 6 and 7). It also
 * spaces a Sentinel's reconnects: one try per period per node, counted from its last try.
 */
export const SENTINEL_PING_PERIOD_MS = 1000;

/**
 * What `down-after-milliseconds` must leave, past one ping period, for a Sentinel's reconnect and
 * its first PING to be answered on a busy machine (connect, AUTH, PING on a loaded 2-core host).
 */
export const SENTINEL_RECONNECT_MARGIN_MS = 1000;

/**
 * The local Sentinels' timings (src/local/redis/replication.ts is given these): a silent primary is
 * down after `downAfterMs`; one failover attempt is bounded by `failoverTimeoutMs`.
 *
 * `downAfterMs` is one ping period plus the margin, not 1 s: at a switch Sentinel restarts the new
 * primary's down-after clock, but reconnects to it only a ping period after its last try at the dead
 * primary. With 1 s the new primary was called down about 1.05 s after 1 switch in 10 (its first PONG
 * came ~50 ms too late), and a failover once begun is not called off: a live primary was failed over
 * while it kept answering counts through its other replica, which the next promotion discarded
 * (docs/benchmarks.md, "redis-failover: the cause of the second failover"). `failoverTimeoutMs` 4.5 s
 * keeps their sum (the in-region budget) under the default region check's earliest call (7 s).
 */
export const LOCAL_SENTINEL_TIMING = {
  downAfterMs: SENTINEL_PING_PERIOD_MS + SENTINEL_RECONNECT_MARGIN_MS,
  failoverTimeoutMs: 4500,
} as const;

/** The ALB's idle timeout, AWS's default (stayup does not change it): a silent target gets a 504. */
export const ALB_IDLE_TIMEOUT_SECONDS = 60;

/**
 * How long the counter holds a write through a Redis failover, retrying it against the new primary,
 * before it answers 503 (STAYUP_REDIS_WRITE_HOLD_MS, set by both renderers): the failover's budget,
 * so a failover within its budget costs clients latency, not errors. Locally the Sentinels' budget
 * (detection + one failover attempt: 6.5 s; a 4 s hold lost writes to a 4.5 s failover under load).
 * On AWS the ElastiCache budget, but 5 s short of the ALB's idle timeout: a request held past it
 * gets the ALB's 504 instead of the service's 503 with its reason.
 */
export const REDIS_WRITE_HOLD = {
  localMs: LOCAL_SENTINEL_TIMING.downAfterMs + LOCAL_SENTINEL_TIMING.failoverTimeoutMs,
  awsMs: Math.min(ELASTICACHE_FAILOVER_BUDGET_SECONDS, ALB_IDLE_TIMEOUT_SECONDS - 5) * 1000,
} as const;

/**
 * The drills' HTTP client timeout: above the local write hold, with room for the balancer's
 * retries (a held try abandoned after its per-try timeout) and a busy machine's queueing, so a
 * client waiting through a failover gets the answer rather than its own timeout.
 */
export const DRILL_CLIENT_TIMEOUT_MS = REDIS_WRITE_HOLD.localMs + 4000;

export interface RegionTimingInput {
  dns: {
    healthCheck: {
      failureThreshold: number;
      aws: { intervalSeconds: number };
      local: { intervalMs: number };
    };
  };
  targetGroup: {
    healthCheck: {
      unhealthyThreshold: number;
      aws: { intervalSeconds: number; timeoutSeconds: number };
      local: { intervalMs: number; timeoutMs: number };
    };
  };
}

export interface InRegionBudget {
  /** A Redis failover inside the region: its primary lost, a replica promoted. */
  redisFailover: number;
  /** An instance or a zone lost: the load balancer stops routing to the dead targets. */
  deadTargetsRemoved: number;
  /** The longest of the two: what the region must be given before it is called down. */
  total: number;
}

/**
 * A region is called down after `failureThreshold` failed checks in a row. The first may come right
 * after the failure began, so the region can be called down as early as (threshold − 1) intervals
 * (`earliest`, what must outlast the in-region budget) and as late as threshold intervals
 * (`regionDetection*`, the worst case the model and the drill's target use).
 */
export interface RegionFailoverTiming {
  /** In seconds on AWS, in milliseconds locally. */
  aws: {
    inRegionBudgetSeconds: InRegionBudget;
    regionDetectionSeconds: number;
    earliestRegionDetectionSeconds: number;
  };
  local: { inRegionBudgetMs: InRegionBudget; regionDetectionMs: number; earliestRegionDetectionMs: number };
}

const budget = (redisFailover: number, deadTargetsRemoved: number): InRegionBudget => ({
  redisFailover,
  deadTargetsRemoved,
  total: Math.max(redisFailover, deadTargetsRemoved),
});

export function regionFailoverTiming(d: RegionTimingInput): RegionFailoverTiming {
  const tg = d.targetGroup.healthCheck;
  const hc = d.dns.healthCheck;
  return {
    aws: {
      inRegionBudgetSeconds: budget(
        ELASTICACHE_FAILOVER_BUDGET_SECONDS,
        tg.aws.intervalSeconds * tg.unhealthyThreshold + tg.aws.timeoutSeconds,
      ),
      // Route 53 calls an endpoint unhealthy after failureThreshold failed checks in a row.
      regionDetectionSeconds: hc.aws.intervalSeconds * hc.failureThreshold,
      earliestRegionDetectionSeconds: hc.aws.intervalSeconds * (hc.failureThreshold - 1),
    },
    local: {
      inRegionBudgetMs: budget(
        LOCAL_SENTINEL_TIMING.downAfterMs + LOCAL_SENTINEL_TIMING.failoverTimeoutMs,
        tg.local.intervalMs * tg.unhealthyThreshold + tg.local.timeoutMs,
      ),
      regionDetectionMs: hc.local.intervalMs * hc.failureThreshold,
      earliestRegionDetectionMs: hc.local.intervalMs * (hc.failureThreshold - 1),
    },
  };
}

/**
 * What is wrong with the description's region health check, if anything: detection not longer
 * than the in-region budget would move traffic to another region on a failure the region recovers
 * from by itself. Each with the field to change and the least value that fixes it.
 */
export function regionTimingProblems(d: RegionTimingInput): { path: string[]; message: string }[] {
  const t = regionFailoverTiming(d);
  const hc = d.dns.healthCheck;
  const problems: { path: string[]; message: string }[] = [];
  if (t.aws.earliestRegionDetectionSeconds <= t.aws.inRegionBudgetSeconds.total) {
    // (threshold − 1) × interval must exceed the budget.
    const least = Math.floor(t.aws.inRegionBudgetSeconds.total / hc.aws.intervalSeconds) + 2;
    problems.push({
      path: ["dns", "healthCheck", "failureThreshold"],
      message: `on AWS the region could be called down ${t.aws.earliestRegionDetectionSeconds} s after a failure began ((${hc.failureThreshold} − 1) × ${hc.aws.intervalSeconds} s: the first failed check may come at once), within the ${t.aws.inRegionBudgetSeconds.total} s a recovery inside it may take (ElastiCache failover ${t.aws.inRegionBudgetSeconds.redisFailover} s, dead targets out ${t.aws.inRegionBudgetSeconds.deadTargetsRemoved} s): set it to ${least <= 10 ? `at least ${least}` : "10 with dns.healthCheck.aws.intervalSeconds 30"}`,
    });
  }
  if (hc.failureThreshold > 1 && t.local.earliestRegionDetectionMs <= t.local.inRegionBudgetMs.total) {
    const least = Math.floor(t.local.inRegionBudgetMs.total / (hc.failureThreshold - 1)) + 1;
    problems.push({
      path: ["dns", "healthCheck", "local", "intervalMs"],
      message: `locally the region could be called down ${t.local.earliestRegionDetectionMs} ms after a failure began ((${hc.failureThreshold} − 1) × ${hc.local.intervalMs} ms), within the ${t.local.inRegionBudgetMs.total} ms a recovery inside it may take (Sentinel failover ${t.local.inRegionBudgetMs.redisFailover} ms, dead targets out ${t.local.inRegionBudgetMs.deadTargetsRemoved} ms): set it to at least ${least}`,
    });
  }
  return problems;
}
