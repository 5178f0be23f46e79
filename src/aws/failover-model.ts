import { formatTable } from "../shared/table.ts";
import type { ResolvedStack } from "../stack/index.ts";

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
/** Booting an EC2 instance and its user data until the service listens (typical, not configurable). */
const INSTANCE_BOOT = 90;

/**
 * Worst-case times, modeled from the configured intervals and thresholds, for the failures the
 * drills rehearse locally. They are arithmetic, not measurements: AWS adds its own jitter.
 */
export function modelFailover(stack: ResolvedStack): FailoverEstimate[] {
  const hc = stack.targetGroup.healthCheck;
  const deadTarget = (interval: number, timeout: number, threshold: number) => interval * threshold + timeout;
  const newTarget = (interval: number, threshold: number) => INSTANCE_BOOT + interval * threshold;
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
      formula: `detection + boot (~${INSTANCE_BOOT} s) + interval × healthy threshold`,
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
  if (dns && secondary) {
    const detection = (interval: number, threshold: number) => interval * threshold;
    rows.push({
      scenario: "region lost: clients resolve to the secondary",
      stayupSeconds:
        detection(dns.healthCheck.aws.intervalSeconds, dns.healthCheck.failureThreshold) + dns.ttlSeconds,
      awsDefaultSeconds:
        detection(ROUTE53_DEFAULT.intervalSeconds, ROUTE53_DEFAULT.failureThreshold) + ALB_ALIAS_TTL,
      formula: `health-check interval × failure threshold + record TTL (alias: ${ALB_ALIAS_TTL} s)`,
    });
    if (secondary.standby.mode !== "active") {
      const serving = (interval: number, threshold: number) =>
        detection(interval, threshold) +
        ALARM_PERIOD +
        newTarget(hc.aws.intervalSeconds, hc.healthyThreshold);
      rows.push({
        scenario: `region lost: ${secondary.standby.mode} secondary at full capacity`,
        stayupSeconds: serving(dns.healthCheck.aws.intervalSeconds, dns.healthCheck.failureThreshold),
        awsDefaultSeconds:
          detection(ROUTE53_DEFAULT.intervalSeconds, ROUTE53_DEFAULT.failureThreshold) +
          ALARM_PERIOD +
          newTarget(ALB_DEFAULT.intervalSeconds, ALB_DEFAULT.healthyThreshold),
        formula: `detection + alarm period (${ALARM_PERIOD} s) + boot + interval × healthy threshold`,
      });
    }
  }
  return rows;
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
