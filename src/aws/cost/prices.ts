/**
 * On-demand list prices stayup prices a synthesized stack with: USD, per region, each with where it
 * was read and the date its source states. Only regions listed here are priced; any other region is
 * named as unpriced by `stayup cost`, never priced at 0. To add a region, copy a block and fill every
 * entry from https://aws.amazon.com/pricing/ with its source and date.
 */
export interface Price {
  usd: number;
  unit: string;
  source: string;
  /** The date the source states for the figure (or, when it states none, when it was read). */
  date: string;
  note?: string;
}

export type PriceKey =
  | `ec2:${string}`
  | `elasticache:${string}`
  | "ebs:gp3-gb-month"
  | "nat:hour"
  | "nat:gb"
  | "transfer:inter-region-gb"
  | "alb:hour"
  | "alb:lcu-hour"
  | "ipv4:hour"
  | "route53:health-check-month"
  | "route53:health-check-option-month"
  | "route53:query-million"
  | "ecr:gb-month"
  | "cloudwatch:alarm-month"
  | "cloudwatch:metric-month"
  | "logs:ingest-gb"
  | "s3:gb-month"
  | "secretsmanager:secret-month"
  // What `stayup destroy` finds left (storage only): priced here so there is one price table.
  | "logs:storage-gb-month"
  | "ebs:snapshot-gb-month"
  | "elasticache:snapshot-gb-month";

const EC2 = "https://aws.amazon.com/ec2/pricing/on-demand/";
const VPC = "https://aws.amazon.com/vpc/pricing/";

/** Europe (Paris): EC2 instance prices as a public daily tracker read them from AWS's EU (Paris) Linux on-demand price map. */
const PARIS_EC2 =
  "https://github.com/hitamu/cloud-price-tracker/blob/91ffec4ab9a5a8320d93d8f1000bdc64c4369392/data/prices.json";
const PARIS_EC2_NOTE =
  "the tracker's fetch of AWS's EU (Paris) Linux on-demand map (b0.p.awsstatic.com ec2-ondemand-without-sec-sel/EU (Paris)/Linux), updated_at 2026-08-08";
/** Europe (Paris): the AWS Price List offer files, as read by a public extract (see each note). */
const offerFile = (service: string) =>
  `https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/${service}/current/eu-west-3/index.json`;
const viaExtract = (published: string) =>
  `read from a third-party extract of this offer file (a public repository's generated eu-west-3 cost table, prices extracted 2026-10-09, found with the code search; repository not named by the tool), offer file published ${published}; not read on the AWS file itself`;

/** Where the Paris figures still marked NOT SOURCED were looked for last, without a Paris figure found. */
const PARIS_UNSOURCED_SEARCH =
  "Searched again 2026-11-22 (stored copies of the AWS pricing pages in several languages, AWS documentation, third-party price pages and public repositories' price extracts) and 2026-12-06 (the docs and pages corpora: the stored ElastiCache pricing pages and third-party node-price pages list US regions only): none gave the eu-west-3 figure.";

/** Prices that AWS lists once for every commercial region (global services, flat list prices). */
const sameInEveryRegion: Partial<Record<PriceKey, Price>> = {
  "route53:query-million": {
    usd: 0.4,
    unit: "million standard queries (first billion a month)",
    source: "https://aws.amazon.com/route53/pricing/",
    date: "2026-12-06",
    note: "Route 53 is a global service; the list price on the AWS page named, compiled offline (no internet), not re-read on that page; the same $0.40 per million standard queries is in third-party summaries of that page found with the pages search",
  },
  "ecr:gb-month": {
    usd: 0.1,
    unit: "GB-month stored (private repository)",
    source: "https://aws.amazon.com/ecr/pricing/",
    date: "2026-12-06",
    note: "the list price on the AWS page named, the same in every commercial region; compiled offline (no internet), not re-read on that page",
  },
};

export const priceTable: Record<string, Partial<Record<PriceKey, Price>>> = {
  "us-east-1": {
    "ec2:t3.nano": {
      usd: 0.0052,
      unit: "hour",
      source: EC2,
      date: "2025-01-28",
      note: "also in a pricing table dated 2025-01-28 found offline",
    },
    "ec2:t3.micro": {
      usd: 0.0104,
      unit: "hour",
      source: EC2,
      date: "2025-01-28",
      note: "also in a pricing table dated 2025-01-28 found offline",
    },
    "ec2:t3.small": {
      usd: 0.0208,
      unit: "hour",
      source: EC2,
      date: "2025-01-28",
      note: "also in a pricing table dated 2025-01-28 found offline",
    },
    "ec2:t3a.micro": {
      usd: 0.0094,
      unit: "hour",
      source: EC2,
      date: "2025-01-28",
      note: "also in a pricing table dated 2025-01-28 found offline",
    },
    "elasticache:cache.t4g.micro": {
      usd: 0.016,
      unit: "node-hour",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-11-22",
      note: "on-demand node table; compiled offline (no internet), the stored copy of the page did not show it",
    },
    "elasticache:cache.t4g.small": {
      usd: 0.032,
      unit: "node-hour",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-11-22",
      note: "on-demand node table; compiled offline (no internet), the stored copy of the page did not show it",
    },
    "ebs:gp3-gb-month": {
      usd: 0.08,
      unit: "GB-month",
      source: "https://aws.amazon.com/ebs/pricing/",
      date: "2026-11-22",
      note: "the list price on the AWS page named; compiled offline (no internet), not re-read on that page",
    },
    "nat:hour": { usd: 0.045, unit: "hour", source: VPC, date: "2025-10-01" },
    "nat:gb": { usd: 0.045, unit: "GB processed", source: VPC, date: "2025-10-01" },
    // A cross-region replica (redis.crossRegion "replica") needs M/R large nodes and above.
    "elasticache:cache.r7g.large": {
      usd: 0.219,
      unit: "node-hour",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-12-06",
      note: "NOT SOURCED: on-demand node table, compiled offline (no internet); no stored copy of the page showed it. Check it on the page named.",
    },
    "elasticache:cache.m7g.large": {
      usd: 0.158,
      unit: "node-hour",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-12-06",
      note: "NOT SOURCED: on-demand node table, compiled offline (no internet); no stored copy of the page showed it. Check it on the page named.",
    },
    "transfer:inter-region-gb": {
      usd: 0.02,
      unit: "GB out to another region",
      source: "https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer",
      date: "2026-12-06",
      note: "NOT SOURCED: data transfer to another AWS region, compiled offline; a Global Datastore's replication is billed at it (ElastiCache pricing page, Global Datastore)",
    },
    "alb:hour": {
      usd: 0.0225,
      unit: "hour",
      source: "https://aws.amazon.com/elasticloadbalancing/pricing/",
      date: "2026-11-22",
      note: "the list price on the AWS page named; compiled offline (no internet), not re-read on that page",
    },
    "alb:lcu-hour": {
      usd: 0.008,
      unit: "LCU-hour",
      source: "https://aws.amazon.com/elasticloadbalancing/pricing/",
      date: "2026-11-22",
      note: "the list price on the AWS page named; compiled offline (no internet), not re-read on that page",
    },
    "ipv4:hour": { usd: 0.005, unit: "public IPv4 address-hour", source: VPC, date: "2024-02-01" },
    "route53:health-check-month": {
      usd: 0.5,
      unit: "health check-month (AWS endpoint)",
      source: "https://aws.amazon.com/route53/pricing/",
      date: "2026-11-22",
      note: "$0.50 AWS endpoint and extras for HTTPS and fast interval also shown by the console summary; compiled offline",
    },
    "route53:health-check-option-month": {
      usd: 1,
      unit: "optional feature-month (HTTPS, fast interval, ...) on an AWS endpoint",
      source: "https://aws.amazon.com/route53/pricing/",
      date: "2026-11-22",
      note: "$0.50 AWS endpoint and extras for HTTPS and fast interval also shown by the console summary; compiled offline",
    },
    ...sameInEveryRegion,
    "cloudwatch:alarm-month": {
      usd: 0.1,
      unit: "standard alarm-month",
      source: "https://aws.amazon.com/cloudwatch/pricing/",
      date: "2026-02-01",
    },
    "cloudwatch:metric-month": {
      usd: 0.3,
      unit: "metric-month (detailed monitoring, first 10,000)",
      source: "https://aws.amazon.com/cloudwatch/pricing/",
      date: "2026-02-15",
    },
    "logs:ingest-gb": {
      usd: 0.5,
      unit: "GB ingested",
      source: "https://aws.amazon.com/cloudwatch/pricing/",
      date: "2026-02-01",
    },
    "s3:gb-month": {
      usd: 0.023,
      unit: "GB-month (Standard)",
      source: "https://aws.amazon.com/s3/pricing/",
      date: "2026-11-22",
      note: "the list price on the AWS page named; compiled offline (no internet), not re-read on that page",
    },
    "secretsmanager:secret-month": {
      usd: 0.4,
      unit: "secret-month",
      source: "https://aws.amazon.com/secrets-manager/pricing/",
      date: "2026-11-22",
      note: "the list price on the AWS page named; compiled offline (no internet), not re-read on that page",
    },
    "logs:storage-gb-month": {
      usd: 0.03,
      unit: "GB-month stored (log data, compressed)",
      source: "https://aws.amazon.com/cloudwatch/pricing/",
      date: "2026-12-06",
      note: "Logs, Store (Archival); the list price on the AWS page named, compiled offline (no internet), not re-read on that page; moved from destroy's own table",
    },
    "ebs:snapshot-gb-month": {
      usd: 0.05,
      unit: "GB-month (snapshot, Standard tier)",
      source: "https://aws.amazon.com/ebs/pricing/",
      date: "2026-12-06",
      note: "Snapshots, Standard; the list price on the AWS page named, compiled offline (no internet), not re-read on that page; moved from destroy's own table",
    },
    "elasticache:snapshot-gb-month": {
      usd: 0.085,
      unit: "GB-month (backup storage)",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-12-06",
      note: "Backup storage; the list price on the AWS page named, compiled offline (no internet), not re-read on that page; moved from destroy's own table",
    },
  },
  "eu-west-3": {
    "ec2:t3.nano": { usd: 0.0059, unit: "hour", source: PARIS_EC2, date: "2026-08-08", note: PARIS_EC2_NOTE },
    "ec2:t3.micro": {
      usd: 0.0118,
      unit: "hour",
      source: PARIS_EC2,
      date: "2026-08-08",
      note: `${PARIS_EC2_NOTE}; the same $0.0118 for EUW3-BoxUsage:t3.micro is quoted from the AWS Pricing API on 2026-09-24 in another public repository's cost review`,
    },
    "ec2:t3.small": {
      usd: 0.0236,
      unit: "hour",
      source: PARIS_EC2,
      date: "2026-08-08",
      note: PARIS_EC2_NOTE,
    },
    "ec2:t3a.micro": {
      usd: 0.0106,
      unit: "hour",
      source: PARIS_EC2,
      date: "2026-08-08",
      note: PARIS_EC2_NOTE,
    },
    "ec2:t3a.small": {
      usd: 0.0212,
      unit: "hour",
      source: PARIS_EC2,
      date: "2026-08-08",
      note: PARIS_EC2_NOTE,
    },
    "elasticache:cache.t4g.micro": {
      usd: 0.0184,
      unit: "node-hour",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-11-22",
      note: `NOT SOURCED: no stored copy of a Paris ElastiCache price was found; the best figure known (compiled offline, no internet). ${PARIS_UNSOURCED_SEARCH} Check it on the page named.`,
    },
    "elasticache:cache.t4g.small": {
      usd: 0.0368,
      unit: "node-hour",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-11-22",
      note: `NOT SOURCED: no stored copy of a Paris ElastiCache price was found; the best figure known (compiled offline, no internet), twice the micro node as in us-east-1. ${PARIS_UNSOURCED_SEARCH} Check it on the page named.`,
    },
    "ebs:gp3-gb-month": {
      usd: 0.0928,
      unit: "GB-month",
      source: offerFile("AmazonEC2"),
      date: "2026-10-08",
      note: `EUW3-EBS:VolumeUsage.gp3; ${viaExtract("2026-10-08")}`,
    },
    "nat:hour": {
      usd: 0.05,
      unit: "hour",
      source: offerFile("AmazonEC2"),
      date: "2026-10-08",
      note: `EUW3-NatGateway-Hours; ${viaExtract("2026-10-08")}`,
    },
    "nat:gb": {
      usd: 0.05,
      unit: "GB processed",
      source: offerFile("AmazonEC2"),
      date: "2026-10-08",
      note: `EUW3-NatGateway-Bytes; ${viaExtract("2026-10-08")}`,
    },
    "elasticache:cache.r7g.large": {
      usd: 0.251,
      unit: "node-hour",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-12-06",
      note: `NOT SOURCED: the us-east-1 figure with Paris's usual ElastiCache uplift, compiled offline. ${PARIS_UNSOURCED_SEARCH} Check it on the page named.`,
    },
    "elasticache:cache.m7g.large": {
      usd: 0.182,
      unit: "node-hour",
      source: "https://aws.amazon.com/elasticache/pricing/",
      date: "2026-12-06",
      note: `NOT SOURCED: the us-east-1 figure with Paris's usual ElastiCache uplift, compiled offline. ${PARIS_UNSOURCED_SEARCH} Check it on the page named.`,
    },
    "transfer:inter-region-gb": {
      usd: 0.02,
      unit: "GB out to another region",
      source: "https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer",
      date: "2026-12-06",
      note: "NOT SOURCED: data transfer to another AWS region, compiled offline; a Global Datastore's replication is billed at it",
    },
    "alb:hour": {
      usd: 0.02646,
      unit: "hour",
      source: offerFile("AWSELB"),
      date: "2026-09-11",
      note: `EUW3-LoadBalancerUsage (Application LoadBalancer); ${viaExtract("2026-09-11")}`,
    },
    "alb:lcu-hour": {
      usd: 0.0084,
      unit: "LCU-hour",
      source: offerFile("AWSELB"),
      date: "2026-09-11",
      note: `EUW3-LCUUsage (Application load balancer); ${viaExtract("2026-09-11")}`,
    },
    "ipv4:hour": {
      usd: 0.005,
      unit: "public IPv4 address-hour",
      source: offerFile("AmazonVPC"),
      date: "2026-09-17",
      note: `EUW3-PublicIPv4:InUseAddress; ${viaExtract("2026-09-17")}`,
    },
    "route53:health-check-month": {
      usd: 0.5,
      unit: "health check-month (AWS endpoint)",
      source: "https://aws.amazon.com/route53/pricing/",
      date: "2026-11-22",
      note: "Route 53 is a global service priced the same in every region: the us-east-1 entry's figure; compiled offline",
    },
    "route53:health-check-option-month": {
      usd: 1,
      unit: "optional feature-month (HTTPS, fast interval, ...) on an AWS endpoint",
      source: "https://aws.amazon.com/route53/pricing/",
      date: "2026-11-22",
      note: "Route 53 is a global service priced the same in every region: the us-east-1 entry's figure; compiled offline",
    },
    ...sameInEveryRegion,
    "cloudwatch:alarm-month": {
      usd: 0.1,
      unit: "standard alarm-month",
      source: offerFile("AmazonCloudWatch"),
      date: "2026-10-07",
      note: `EUW3-CW:AlarmMonitorUsage; ${viaExtract("2026-10-07")}`,
    },
    "cloudwatch:metric-month": {
      usd: 0.3,
      unit: "metric-month (detailed monitoring, first 10,000)",
      source: "https://aws.amazon.com/cloudwatch/pricing/",
      date: "2026-11-22",
      note: `NOT SOURCED for Paris: the best figure known (the same first-tier metric price as us-east-1), compiled offline. ${PARIS_UNSOURCED_SEARCH} Check it on the page named.`,
    },
    "logs:ingest-gb": {
      usd: 0.5985,
      unit: "GB ingested",
      source: offerFile("AmazonCloudWatch"),
      date: "2026-10-07",
      note: `EUW3-DataProcessing-Bytes (Standard log class); ${viaExtract("2026-10-07")}`,
    },
    "s3:gb-month": {
      usd: 0.024,
      unit: "GB-month (Standard)",
      source: offerFile("AmazonS3"),
      date: "2026-09-28",
      note: `EUW3-TimedStorage-ByteHrs, first 50 TB; ${viaExtract("2026-09-28")}; the same $0.024 appears on a 2019 Paris bill quoted in a public blog repository`,
    },
    "secretsmanager:secret-month": {
      usd: 0.4,
      unit: "secret-month",
      source: offerFile("AWSSecretsManager"),
      date: "2026-09-11",
      note: `EUW3-AWSSecretsManager-Secrets; ${viaExtract("2026-09-11")}`,
    },
  },
};

/** Usage stayup cannot read from a template: stated, and applied the same way everywhere. */
export const assumptions = {
  hoursPerMonth: 730,
  /** Per NAT gateway: package installs and the bundle at boot, AWS API calls, Redis is in the VPC. */
  natGbPerMonth: 10,
  /** A Global Datastore's replication to the other region: the page counter's writes, far below it. */
  globalDatastoreGbPerMonth: 10,
  /** A small site: one LCU on average (25 new connections/s or 1 GB/h of traffic is one LCU). */
  albLcu: 1,
  /** Per log group (instance logs, flow logs, Lambda logs). */
  logGbPerMonth: 1,
  /** Per bucket (ALB access logs). */
  s3GbPerMonth: 1,
  /** Detailed monitoring (1-minute) sends 7 EC2 metrics per instance. */
  detailedMonitoringMetrics: 7,
  /** Per image repository: the kept images' layers (a Node slim image is about 0.1 GB; ten of them). */
  ecrGbPerMonth: 1,
  /** Queries a month for the name a failover record answers (alias records' queries are free). */
  dnsQueriesMillionsPerMonth: 1,
  /**
   * Container Insights (ECS, not enhanced), charged as custom metrics: metrics per cluster, per
   * service and per task definition family, ASSUMED from the dimensions AWS's ECS metrics list
   * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html)
   * names, not counted on an account; and the performance log events they come from.
   */
  containerInsights: { clusterMetrics: 11, serviceMetrics: 13, taskFamilyMetrics: 8, logGbPerMonth: 1 },
  /** Nightly stop: instances stopped 20:00-08:00, every day. */
  nightlyStopHoursPerDay: 12,
};
