/**
 * Route 53's answers for a failover record pair, row by row as the documentation states them, run
 * against the one function the local DNS server answers through (src/stack/route53-failover.ts).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type FailoverHealth,
  type FailoverRecord,
  recordHealthy,
  route53FailoverAnswer,
} from "../src/stack/route53-failover.ts";

const API_FAILOVER =
  "API reference, ResourceRecordSet.Failover (docs.aws.amazon.com/Route53/latest/APIReference/API_ResourceRecordSet.html)";
const CHOOSES =
  "Developer guide, How Route 53 chooses records when health checking is configured (…/DeveloperGuide/health-checks-how-route-53-chooses-records.html)";
const COMPLEX =
  "Developer guide, How health checks work in complex configurations (…/DeveloperGuide/dns-failover-complex-configs.html)";
const ALIAS = "API reference, AliasTarget.EvaluateTargetHealth (…/APIReference/API_AliasTarget.html)";

type Pair = [FailoverRecord, FailoverRecord];
const pair = (primary: Partial<FailoverRecord>, secondary: Partial<FailoverRecord>): Pair => [
  { failover: "PRIMARY", value: "primary", ...primary },
  { failover: "SECONDARY", value: "secondary", ...secondary },
];
const checked = pair({ healthCheck: "p" }, { healthCheck: "s" });
const primaryOnly = pair({ healthCheck: "p" }, {});
const alias = pair({ evaluateTargetHealth: true }, { evaluateTargetHealth: true });

const rows: {
  records: Pair;
  health: FailoverHealth;
  answer: "primary" | "secondary";
  source: string;
  rule: string;
}[] = [
  // Checks on both records.
  {
    records: checked,
    health: { checks: { p: true, s: true } },
    answer: "primary",
    source: API_FAILOVER,
    rule: "primary healthy: the primary, regardless of the secondary",
  },
  {
    records: checked,
    health: { checks: { p: true, s: false } },
    answer: "primary",
    source: API_FAILOVER,
    rule: "primary healthy: the primary, regardless of the secondary",
  },
  {
    records: checked,
    health: { checks: { p: false, s: true } },
    answer: "secondary",
    source: API_FAILOVER,
    rule: "primary unhealthy, secondary healthy: the secondary",
  },
  {
    records: checked,
    health: { checks: { p: false, s: false } },
    answer: "primary",
    source: API_FAILOVER,
    rule: "secondary unhealthy: the primary, regardless of the primary's health",
  },
  // No check on the secondary.
  {
    records: primaryOnly,
    health: { checks: { p: true } },
    answer: "primary",
    source: API_FAILOVER,
    rule: "primary healthy: the primary",
  },
  {
    records: primaryOnly,
    health: { checks: { p: false } },
    answer: "secondary",
    source: API_FAILOVER,
    rule: "HealthCheckId omitted on the secondary and the primary unhealthy: always the secondary, regardless of its endpoint",
  },
  // No check on the primary: always healthy, so always answered.
  {
    records: pair({}, { healthCheck: "s" }),
    health: { checks: { s: true } },
    answer: "primary",
    source: CHOOSES,
    rule: "a record without a health check is always healthy",
  },
  {
    records: pair({}, {}),
    health: { checks: {} },
    answer: "primary",
    source: CHOOSES,
    rule: "a record without a health check is always healthy",
  },
  // Alias records with evaluate target health.
  {
    records: alias,
    health: { checks: {}, targets: { PRIMARY: false, SECONDARY: true } },
    answer: "secondary",
    source: ALIAS,
    rule: "EvaluateTargetHealth: the record inherits its target's health",
  },
  {
    records: alias,
    health: { checks: {}, targets: { PRIMARY: true, SECONDARY: false } },
    answer: "primary",
    source: ALIAS,
    rule: "EvaluateTargetHealth: the record inherits its target's health",
  },
  {
    records: alias,
    health: { checks: {}, targets: { PRIMARY: false, SECONDARY: false } },
    answer: "primary",
    source: API_FAILOVER,
    rule: "secondary unhealthy (its target): the primary",
  },
  {
    records: pair({ evaluateTargetHealth: false }, {}),
    health: { checks: {}, targets: { PRIMARY: false } },
    answer: "primary",
    source: CHOOSES,
    rule: "an alias without EvaluateTargetHealth and without a check is always healthy",
  },
  // An alias record with a health check and evaluate target health: both must be healthy.
  {
    records: pair({ healthCheck: "p", evaluateTargetHealth: true }, {}),
    health: { checks: { p: true }, targets: { PRIMARY: false } },
    answer: "secondary",
    source: COMPLEX,
    rule: "health check and evaluate target health on an alias: unhealthy if either is",
  },
  {
    records: pair({ healthCheck: "p", evaluateTargetHealth: true }, {}),
    health: { checks: { p: false }, targets: { PRIMARY: true } },
    answer: "secondary",
    source: COMPLEX,
    rule: "health check and evaluate target health on an alias: unhealthy if either is",
  },
];

describe("Route 53 failover answers (the shared function)", () => {
  for (const [i, row] of rows.entries()) {
    it(`row ${i + 1}: ${row.rule} → ${row.answer} [${row.source}]`, () => {
      assert.equal(route53FailoverAnswer(row.records, row.health).value, row.answer);
    });
  }

  it("says which rule answered: the secondary-unhealthy rule names itself", () => {
    const a = route53FailoverAnswer(checked, { checks: { p: false, s: false } });
    assert.match(a.because, /secondary is unhealthy/);
    assert.equal(recordHealthy({ failover: "SECONDARY", value: "x" }, { checks: {} }), true);
  });

  it("refuses anything but one PRIMARY and one SECONDARY", () => {
    assert.throws(
      () => route53FailoverAnswer(pair({}, {}).slice(0, 1), { checks: {} }),
      /one PRIMARY and one SECONDARY/,
    );
  });
});
