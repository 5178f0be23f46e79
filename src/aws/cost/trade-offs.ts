import type { ResolvedStack } from "../../stack/index.ts";
import { secondaryWithoutFailover } from "../naming.ts";
import { type CostEstimate, round } from "./estimate.ts";
import { assumptions, type PriceKey, priceTable } from "./prices.ts";

export interface TradeOff {
  question: string;
  /** USD per month the second option adds (negative: saves); null when a price is missing. */
  usdPerMonth: number | null;
  answer: string;
}

const h = assumptions.hoursPerMonth;

/** The seeds' cost trade-offs, answered with this description's sizes and the price table. */
export function tradeOffs(stack: ResolvedStack, estimate: CostEstimate): TradeOff[] {
  const rows: TradeOff[] = [];
  const priced = (region: string, compute: (p: (key: PriceKey) => number) => number): number | null => {
    try {
      return round(
        compute((key) => {
          const p = priceTable[region]?.[key];
          if (!p) throw new Error(`no price for ${key} in ${region}`);
          return p.usd;
        }),
      );
    } catch {
      return null;
    }
  };
  const unpricedIn = (region: string) => `not priced: no prices for ${region} in src/aws/cost/prices.ts`;
  const primary = stack.regions.primary;
  const azs = primary.availabilityZones.length;

  const nat = priced(
    primary.name,
    (p) => (azs - 1) * ((p("nat:hour") + p("ipv4:hour")) * h + assumptions.natGbPerMonth * p("nat:gb")),
  );
  rows.push({
    question: `one NAT gateway vs one per AZ (${azs} AZs, ${primary.name})`,
    usdPerMonth: nat,
    answer:
      nat === null
        ? unpricedIn(primary.name)
        : `one per AZ costs $${nat.toFixed(2)}/month more; egress then survives an AZ loss (${stack.network.natGateways === "one" ? "this environment runs one" : "this environment runs one per AZ"})`,
  });

  // Only the load-balanced topology renders the secondary region (ecs and single-instance are one
  // region): its standby is not priced for a stack that would not have it.
  const secondary = stack.topology === "load-balanced" ? stack.regions.secondary : undefined;
  const unswitchable = secondaryWithoutFailover(stack);
  if (secondary && unswitchable) {
    // Priced from the synthesized stacks of that region: what it would cost, for no failover.
    const secondaryUsd = round(
      estimate.items.filter((i) => i.region === secondary.name).reduce((sum, i) => sum + i.usdPerMonth, 0),
    );
    rows.push({
      question: `a standby region (${secondary.name}) without aws.hostedZone`,
      usdPerMonth: secondaryUsd,
      answer: `deploy refuses it: no Route 53 failover record would be deployed, so nothing could switch to it; its stacks would cost $${secondaryUsd.toFixed(2)}/month and never serve (${unswitchable.fix})`,
    });
  } else if (secondary) {
    const type = stack.web.instanceTypes[0] as string;
    const perInstance = (p: (key: PriceKey) => number) =>
      p(`ec2:${type}`) * h +
      8 * p("ebs:gp3-gb-month") +
      assumptions.detailedMonitoringMetrics * p("cloudwatch:metric-month");
    const warm = priced(secondary.name, (p) => secondary.standby.warmCapacity * perInstance(p));
    const active = priced(secondary.name, (p) => stack.web.capacity.desired * perInstance(p));
    rows.push({
      question: `pilot-light vs warm standby (${secondary.standby.warmCapacity} × ${type} in ${secondary.name})`,
      usdPerMonth: warm,
      answer:
        warm === null
          ? unpricedIn(secondary.name)
          : `warm costs $${warm.toFixed(2)}/month more and serves at once after a failover; active (${stack.web.capacity.desired} instances) $${active?.toFixed(2)}/month more`,
    });
  }

  const alb = priced(
    primary.name,
    (p) => (p("alb:hour") + assumptions.albLcu * p("alb:lcu-hour") + azs * p("ipv4:hour")) * h,
  );
  const eip = priced(primary.name, (p) => p("ipv4:hour") * h);
  rows.push({
    question: "a load balancer vs a single instance with an Elastic IP",
    usdPerMonth: alb === null || eip === null ? null : round(alb - eip),
    answer:
      alb === null || eip === null
        ? unpricedIn(primary.name)
        : `the ALB (with its ${azs} public addresses) costs $${alb.toFixed(2)}/month, the Elastic IP $${eip.toFixed(2)}: $${round(alb - eip).toFixed(2)} more for health checks and no single point of failure`,
  });

  // Instances stop; NAT, the load balancer, Redis and volumes keep running (and costing). A group's
  // instance hours: its desired capacity, or the ECS cluster's steady-state count.
  const compute = estimate.items.filter((i) => /^\d+ × \S+ \((desired capacity|steady state:)/.test(i.what));
  const stopped = round(
    compute.reduce((sum, i) => sum + i.usdPerMonth, 0) * (assumptions.nightlyStopHoursPerDay / 24),
  );
  // src/aws/nightly-stop.ts schedules the web and single-instance groups, not an ECS cluster's.
  const notRendered =
    stack.topology === "ecs"
      ? " (stayup renders no nightly stop for ecs: its cluster's instances run around the clock)"
      : "";
  rows.push({
    question: `stopping ${stack.environment}'s instances at night (${assumptions.nightlyStopHoursPerDay} h a day)`,
    usdPerMonth: -stopped,
    answer: `${notRendered ? "would save" : "saves"} $${stopped.toFixed(2)}/month of instance hours${estimate.complete ? "" : " (of the instances priced)"}${notRendered}; NAT, the load balancer, Redis and volumes keep costing`,
  });
  return rows;
}
