/**
 * Route 53's answer for a failover record pair, as the Route 53 documentation states it. One pure
 * function that the local DNS server answers through and that the AWS records are tested against,
 * so the local runtime cannot answer differently from Route 53 with the same records.
 *
 * Sources (cited per case in test/route53-failover.test.ts):
 * - API reference, ResourceRecordSet.Failover:
 *   https://docs.aws.amazon.com/Route53/latest/APIReference/API_ResourceRecordSet.html
 * - Developer guide, "How Amazon Route 53 chooses records when health checking is configured":
 *   https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-how-route-53-chooses-records.html
 * - Developer guide, "How health checks work in complex Amazon Route 53 configurations":
 *   https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-complex-configs.html
 * - API reference, AliasTarget.EvaluateTargetHealth:
 *   https://docs.aws.amazon.com/Route53/latest/APIReference/API_AliasTarget.html
 */

export type FailoverRole = "PRIMARY" | "SECONDARY";

/** One failover record, with what Route 53 reads of it to judge its health. */
export interface FailoverRecord<Value = string> {
  failover: FailoverRole;
  /** What the record answers (an address, a name). */
  value: Value;
  /** HealthCheckId: the record's health is that check's status. Absent: no check. */
  healthCheck?: string;
  /** An alias record with EvaluateTargetHealth: the record inherits the target's health. */
  evaluateTargetHealth?: boolean;
}

/** What Route 53 knows when a query arrives: each health check's status, each alias target's health. */
export interface FailoverHealth {
  /** Health check id → healthy. A check not listed counts as healthy (it has not failed yet). */
  checks: Readonly<Record<string, boolean>>;
  /** For alias records with evaluateTargetHealth: the target's health, by record role. */
  targets?: Readonly<Partial<Record<FailoverRole, boolean>>>;
}

export interface FailoverAnswer<Value = string> {
  record: FailoverRole;
  value: Value;
  /** Which rule of the documentation decided, in its words. */
  because: string;
}

/**
 * Whether Route 53 counts a record healthy: a record with neither a health check nor evaluate
 * target health is always healthy; otherwise each of the two that it has must be healthy.
 */
export function recordHealthy(record: FailoverRecord<unknown>, health: FailoverHealth): boolean {
  const checkHealthy = record.healthCheck === undefined || health.checks[record.healthCheck] !== false;
  const targetHealthy = !record.evaluateTargetHealth || health.targets?.[record.failover] !== false;
  return checkHealthy && targetHealthy;
}

/** The record Route 53 answers a query with, for a PRIMARY and a SECONDARY record of one name and type. */
export function route53FailoverAnswer<Value>(
  records: readonly [FailoverRecord<Value>, FailoverRecord<Value>] | readonly FailoverRecord<Value>[],
  health: FailoverHealth,
): FailoverAnswer<Value> {
  const primary = records.find((r) => r.failover === "PRIMARY");
  const secondary = records.find((r) => r.failover === "SECONDARY");
  if (!primary || !secondary || records.length !== 2) {
    throw new Error("a failover pair is one PRIMARY and one SECONDARY record");
  }
  const answer = (record: FailoverRecord<Value>, because: string): FailoverAnswer<Value> => ({
    record: record.failover,
    value: record.value,
    because,
  });
  if (recordHealthy(primary, health)) {
    return answer(primary, "the primary is healthy: the primary, whatever the secondary's health");
  }
  if (recordHealthy(secondary, health)) {
    return answer(
      secondary,
      secondary.healthCheck === undefined && !secondary.evaluateTargetHealth
        ? "the primary is unhealthy and the secondary has no health check: always the secondary"
        : "the primary is unhealthy and the secondary is healthy: the secondary",
    );
  }
  return answer(primary, "the secondary is unhealthy: the primary, whatever the primary's health");
}
