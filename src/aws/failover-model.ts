import { formatTable } from "../shared/table.ts";
import { derive, type ResolvedStack } from "../stack/index.ts";
import { AWS_TIMING_ASSUMPTIONS, type TimingAssumption } from "../stack/region-failover-timing.ts";
import { rendersDnsFailover } from "./naming.ts";

export interface FailoverEstimate {
  scenario: string;
  /** Worst case with the description's settings, in seconds. */
  stayupSeconds: number;
  /** The same with AWS's defaults (what the seeds ran with). */
  awsDefaultSeconds: number;
  formula: string;
}

// AWS defaults the comparison uses.
const ALB_DEFAULT = { intervalSeconds: 30, timeoutSeconds: 5, unhealthyThreshold: 2, healthyThreshold: 5 };
const ALB_DEFAULT_DEREGISTRATION_DELAY = 300;
const ROUTE53_DEFAULT = { intervalSeconds: 30, failureThreshold: 3 };
/** Route 53 alias records to a load balancer carry its TTL (what the seeds used). stayup's failover
 * record is a CNAME with the description's TTL. */
const ALB_ALIAS_TTL = 60;
/** Route 53's HealthCheckStatus metric has a 1-minute period: one datapoint to alarm. */
const ALARM_PERIOD = 60;

/**
 * Worst-case times, modeled from the configured intervals and thresholds, for the failures the
 * drills rehearse locally. They are arithmetic, not measurements: AWS adds its own jitter.
 */
export function modelFailover(stack: ResolvedStack): FailoverEstimate[] {
  const hc = stack.targetGroup.healthCheck;
  const deadTarget = (interval: number, timeout: number, threshold: number) => interval * threshold + timeout;
  // Booting an EC2 instance and its user data until the service listens (assumptions below).
  const boot =
    STANDBY_START_ASSUMPTIONS.instanceBoot.seconds + STANDBY_START_ASSUMPTIONS.bundleInstall.seconds;
  const newTarget = (interval: number, threshold: number) => boot + interval * threshold;
  const rows: FailoverEstimate[] = [
    {
      scenario: "instance dies: the ALB stops routing to it",
      stayupSeconds: deadTarget(hc.aws.intervalSeconds, hc.aws.timeoutSeconds, hc.unhealthyThreshold),
      awsDefaultSeconds: deadTarget(
        ALB_DEFAULT.intervalSeconds,
        ALB_DEFAULT.timeoutSeconds,
        ALB_DEFAULT.unhealthyThreshold,
      ),
      formula: "interval × unhealthy threshold + timeout",
    },
    {
      scenario: "instance or AZ lost: replacement in rotation",
      stayupSeconds:
        deadTarget(hc.aws.intervalSeconds, hc.aws.timeoutSeconds, hc.unhealthyThreshold) +
        newTarget(hc.aws.intervalSeconds, hc.healthyThreshold),
      awsDefaultSeconds:
        deadTarget(ALB_DEFAULT.intervalSeconds, ALB_DEFAULT.timeoutSeconds, ALB_DEFAULT.unhealthyThreshold) +
        newTarget(ALB_DEFAULT.intervalSeconds, ALB_DEFAULT.healthyThreshold),
      formula: `detection + boot and install (~${boot} s) + interval × healthy threshold`,
    },
    {
      scenario: "scale-in or deploy: a target drains",
      stayupSeconds: stack.targetGroup.deregistrationDelaySeconds,
      awsDefaultSeconds: ALB_DEFAULT_DEREGISTRATION_DELAY,
      formula: "deregistration delay",
    },
  ];
  const dns = stack.dns;
  const secondary = stack.regions.secondary;
  // Without a hosted zone no failover record is deployed: nothing would send clients anywhere.
  if (!dns || !secondary || !rendersDnsFailover(stack)) return rows;
  rows.push(
    ...regionLossPhases(stack).map(({ phase, stayupSeconds, awsDefaultSeconds, formula }) => ({
      scenario: `region lost: ${phase}`,
      stayupSeconds,
      awsDefaultSeconds,
      formula,
    })),
  );
  return rows;
}

/** A figure the model takes from outside the description, with where it comes from. */
export type ModelAssumption = TimingAssumption;

/**
 * What a standby's start takes that no setting controls (src/stack/region-failover-timing.ts holds
 * every such figure, with its source).
 */
export const STANDBY_START_ASSUMPTIONS = {
  lambdaAndGroup: AWS_TIMING_ASSUMPTIONS.lambdaAndGroup,
  instanceBoot: AWS_TIMING_ASSUMPTIONS.instanceBoot,
  bundleInstall: AWS_TIMING_ASSUMPTIONS.bundleInstall,
};

export interface RegionLossPhase {
  phase: string;
  /** From the region's loss, with the description's settings. */
  stayupSeconds: number;
  /** The same with AWS's defaults and the seed's records (a health check on both). */
  awsDefaultSeconds: number;
  formula: string;
}

/**
 * A region's loss, phase by phase, each time counted from the loss: the same phases the
 * region-outage drill's timeline reports (detection, alarm, standby start, DNS, served).
 */
export function regionLossPhases(stack: ResolvedStack): RegionLossPhase[] {
  const dns = stack.dns;
  const secondary = stack.regions.secondary;
  if (!dns || !secondary) return [];
  const hc = stack.targetGroup.healthCheck;
  const a = STANDBY_START_ASSUMPTIONS;
  const start = (interval: number, threshold: number) =>
    a.lambdaAndGroup.seconds + a.instanceBoot.seconds + a.bundleInstall.seconds + interval * threshold;
  const mode = secondary.standby.mode;
  const type = stack.web.instanceTypes[0] ?? "the instance type";
  const phases = (p: {
    r53Interval: number;
    r53Threshold: number;
    ttl: number;
    tgInterval: number;
    tgHealthy: number;
    secondaryChecked: boolean;
  }) => {
    const detection = p.r53Interval * p.r53Threshold;
    const alarm = detection + ALARM_PERIOD;
    // An active secondary already serves; a warm one serves at its standby size at once.
    const started = mode === "active" ? detection : alarm + start(p.tgInterval, p.tgHealthy);
    // A checked SECONDARY is answered only once Route 53 finds it healthy: threshold passes after
    // it serves (until then Route 53 answers the failed primary); an unchecked one at detection.
    const answered =
      p.secondaryChecked && mode === "pilot-light" ? started + p.r53Interval * p.r53Threshold : detection;
    const resolved = answered + p.ttl;
    const served = mode === "pilot-light" ? Math.max(resolved, started) : resolved;
    return { detection, alarm, started, resolved, served };
  };
  const ours = phases({
    r53Interval: dns.healthCheck.aws.intervalSeconds,
    r53Threshold: dns.healthCheck.failureThreshold,
    ttl: dns.ttlSeconds,
    tgInterval: hc.aws.intervalSeconds,
    tgHealthy: hc.healthyThreshold,
    secondaryChecked: dns.healthCheck.checkedRecords === "both",
  });
  const seed = phases({
    r53Interval: ROUTE53_DEFAULT.intervalSeconds,
    r53Threshold: ROUTE53_DEFAULT.failureThreshold,
    ttl: ALB_ALIAS_TTL,
    tgInterval: ALB_DEFAULT.intervalSeconds,
    tgHealthy: ALB_DEFAULT.healthyThreshold,
    secondaryChecked: true,
  });
  const startFormula = `alarm + Lambda and group (~${a.lambdaAndGroup.seconds} s) + ${type} boot (~${a.instanceBoot.seconds} s) + bundle install (~${a.bundleInstall.seconds} s) + interval × healthy threshold`;
  return [
    {
      phase: "detection (Route 53 calls the primary down)",
      stayupSeconds: ours.detection,
      awsDefaultSeconds: seed.detection,
      formula: "health-check interval × failure threshold",
    },
    {
      phase: "alarm (the failover Lambda runs)",
      stayupSeconds: ours.alarm,
      awsDefaultSeconds: seed.alarm,
      formula: `detection + HealthCheckStatus period (${ALARM_PERIOD} s)`,
    },
    {
      phase: `standby start (${mode} secondary at full capacity)`,
      stayupSeconds: ours.started,
      awsDefaultSeconds: seed.started,
      formula: mode === "active" ? "already serving" : startFormula,
    },
    {
      phase: "DNS (clients resolve to the secondary)",
      stayupSeconds: ours.resolved,
      awsDefaultSeconds: seed.resolved,
      formula:
        dns.healthCheck.checkedRecords === "both" && mode === "pilot-light"
          ? "standby start + interval × threshold (its own check) + TTL"
          : `detection + record TTL (no check on the SECONDARY; seed: checked, alias TTL ${ALB_ALIAS_TTL} s)`,
    },
    {
      phase: "clients served by the secondary",
      stayupSeconds: ours.served,
      awsDefaultSeconds: seed.served,
      formula:
        mode === "pilot-light" ? "the later of DNS and standby start" : "DNS (the standby already serves)",
    },
  ];
}

/** Both budgets side by side: how long the region may recover by itself, and when it is called down. */
export function formatRegionBudgets(stack: ResolvedStack): string | undefined {
  const t = derive(stack).regionTiming;
  const hc = stack.dns?.healthCheck;
  if (!t || !hc) return undefined;
  return formatTable([
    ["REGION HEALTH", "IN-REGION RECOVERY BUDGET", "REGION CALLED DOWN AFTER"],
    [
      "AWS",
      `${t.aws.inRegionBudgetSeconds.total} s (ElastiCache failover ${t.aws.inRegionBudgetSeconds.redisFailover} s, dead targets out ${t.aws.inRegionBudgetSeconds.deadTargetsRemoved} s)`,
      `${t.aws.earliestRegionDetectionSeconds}-${t.aws.regionDetectionSeconds} s (${hc.failureThreshold} × ${hc.aws.intervalSeconds} s, the first check at once or not)`,
    ],
    [
      "local",
      `${t.local.inRegionBudgetMs.total / 1000} s (Sentinel failover ${t.local.inRegionBudgetMs.redisFailover / 1000} s, dead targets out ${t.local.inRegionBudgetMs.deadTargetsRemoved / 1000} s)`,
      `${t.local.earliestRegionDetectionMs / 1000}-${t.local.regionDetectionMs / 1000} s (${hc.failureThreshold} × ${hc.local.intervalMs / 1000} s, the first check at once or not)`,
    ],
  ]);
}

/** The figures the model assumes, with their sources (printed under the model). */
export function formatModelAssumptions(): string {
  return [
    "Assumed (not settings: AWS publishes no figure; src/stack/region-failover-timing.ts):",
    ...Object.values(AWS_TIMING_ASSUMPTIONS).map((x) => `  ${x.seconds} s: ${x.source}`),
  ].join("\n");
}

export function formatFailoverModel(rows: FailoverEstimate[]): string {
  return formatTable([
    ["SCENARIO (modeled worst case on AWS)", "STAYUP", "AWS DEFAULTS", "FROM"],
    ...rows.map((r) => [r.scenario, `${r.stayupSeconds} s`, `${r.awsDefaultSeconds} s`, r.formula]),
  ]);
}

/**
 * What the model above covers and what it does not, for this description: the times are for
 * failures a health check sees; gray failures are handled (or not) by the target group's algorithm.
 */
export function failoverModelCoverage(stack: ResolvedStack): { covers: string[]; doesNotCover: string[] } {
  const hc = stack.targetGroup.healthCheck;
  const tg = stack.targetGroup.aws;
  const covers = [
    `failures that fail the health check on ${hc.path}: a crashed or hung instance, a lost AZ, a drained target, and (with Route 53) a lost region`,
  ];
  const doesNotCover = [
    `an instance that passes ${hc.path} but fails or stalls on other paths: no row above applies; no health check removes or replaces it`,
    "latency: a slow target that answers without errors is neither detected nor mitigated on AWS",
    "AWS's own jitter, API throttling and capacity shortages: the times are arithmetic from the settings, not measurements",
  ];
  if (tg.algorithm === "weighted_random" && tg.anomalyMitigation) {
    const desired = stack.web.capacity.desired;
    covers.push(
      "gray failures (anomaly mitigation, weighted_random): a target whose 5xx or connection errors stand out from its peers' while its health check passes gets less and less traffic, and more again once it recovers; AWS publishes no detection time, so no row models it",
    );
    doesNotCover.push(
      `anomaly detection needs at least 3 healthy targets: ${stack.environment} runs ${desired} (desired capacity), so it is ${desired < 3 ? "off there" : "on while all are healthy"}; it reduces traffic, it never removes or replaces the target, and it cannot act when every target fails alike`,
    );
  } else {
    doesNotCover.push(
      `gray failures: the target group uses ${tg.algorithm} without anomaly mitigation, so a target that fails while ${hc.path} passes keeps its full share of traffic (set targetGroup.aws to weighted_random with anomalyMitigation)`,
    );
  }
  return { covers, doesNotCover };
}

export function formatFailoverCoverage(coverage: { covers: string[]; doesNotCover: string[] }): string {
  return [
    "The model covers:",
    ...coverage.covers.map((c) => `  + ${c}`),
    "It does not cover:",
    ...coverage.doesNotCover.map((c) => `  - ${c}`),
  ].join("\n");
}
