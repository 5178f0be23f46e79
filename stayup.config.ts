import { defineStack } from "./src/stack/index.ts";

/**
 * The stack stayup runs: locally with `npm start`, on AWS with `stayup deploy`.
 * Defaults reproduce tutorial 07 (instances spread over three AZs behind a load balancer,
 * the counter in Redis) with the published defects fixed.
 */
export default defineStack({
  name: "stayup",
  // "load-balanced" (tutorial 07) or "single-instance" (seed 003); `--topology` overrides it per run.
  topology: "load-balanced",
  regions: {
    primary: { name: "eu-west-3", availabilityZones: ["eu-west-3a", "eu-west-3b", "eu-west-3c"] },
    // Seed 002: a second region that takes over through DNS failover, started by an alarm.
    secondary: {
      name: "us-east-1",
      availabilityZones: ["us-east-1a", "us-east-1b", "us-east-1c"],
      standby: { mode: "pilot-light", warmCapacity: 1 },
      localHost: "127.0.0.2",
    },
  },
  dns: {
    name: "app.stayup.test",
    // The failover record's TTL, on Route 53 (a CNAME, so the TTL is ours) and locally.
    ttlSeconds: 1,
    healthCheck: {
      // Only the PRIMARY record is checked: Route 53 answers the SECONDARY as soon as the primary
      // fails ("both" would keep answering the dead primary while a pilot light boots).
      checkedRecords: "primary",
      // A recovery inside the region comes first: 8 failed checks, the first possibly at once, so
      // 70 to 80 s on AWS, longer than an ElastiCache failover (budgeted 60 s); locally 7 to 8 s,
      // longer than a Sentinel failover (6.5 s). `stayup check` shows both budgets side by side.
      failureThreshold: 8,
      aws: { intervalSeconds: 10 },
      // A busy region answers late, not never: 2 s for the answer, as Route 53 allows.
      local: { intervalMs: 1000, timeoutMs: 2000 },
    },
    local: { host: "127.0.0.1", port: 5353 },
  },
  scaling: {
    targetCpuPercent: 50,
    aws: { warmupSeconds: 120, scaleInCooldownSeconds: 300 },
    local: { evaluationIntervalMs: 1000, evaluationPeriods: 2, warmupMs: 2000, scaleInCooldownMs: 5000 },
  },
  instanceGroup: {
    // EC2 needs minutes to boot and install; a local process needs seconds.
    aws: { healthCheckGracePeriodSeconds: 180 },
    // An instance only unhealthy (not dead) is out of rotation at once but replaced after 5 s, and
    // never while every instance is unhealthy: group-wide slowness is overload, not broken instances.
    local: { healthCheckGracePeriodMs: 15_000, replacementDelayMs: 5_000 },
  },
  notifications: { webhooks: [], emails: [] },
  webService: { port: 8000 },
  targetGroup: {
    healthCheck: {
      path: "/health",
      healthyThreshold: 2,
      unhealthyThreshold: 2,
      // The ALB's fastest useful timings: a dead target is out after ~20 s, not the seed's ~60 s.
      aws: { intervalSeconds: 10, timeoutSeconds: 5 },
      // Locally a check is a loopback round trip; sub-second detection costs nothing.
      local: { intervalMs: 500, timeoutMs: 250 },
    },
    deregistrationDelaySeconds: 30,
    // On AWS: weighted random with anomaly mitigation steers traffic away from a target that fails
    // while its /health passes (round_robin or least_outstanding_requests turn it off).
    aws: { algorithm: "weighted_random", anomalyMitigation: true },
  },
  loadBalancer: {
    local: { host: "127.0.0.1", port: 8080 },
    // An instance whose /health passes while its pages fail or stall leaves rotation after 5 bad
    // answers in a row, for 5 s (10 s, 20 s, ... on repeats, up to 60 s); half the group at most.
    outlierDetection: {
      consecutiveFailures: 5,
      baseEjectionMs: 5000,
      maxEjectionMs: 60_000,
      maxEjectionPercent: 50,
    },
    // A GET with no answer headers after 500 ms goes to another target, within a budget of 20 % of
    // the requests in flight, so retries cannot multiply an overload.
    retries: { maxAttempts: 3, perTryTimeoutMs: 500, budgetPercent: 20, minRetryConcurrency: 10 },
  },
  redis: { localPort: 6390 },
  aws: {
    vpcCidr: "10.0.0.0/16",
    // Session Manager is always on; uncomment for an SSH bastion reachable from one range only.
    // bastion: { allowedCidr: "203.0.113.0/24", instanceType: "t3.nano" },
    // Once you own a Route 53 public zone that holds dns.name, name it here: the load balancers get
    // DNS names and, with the secondary region, Route 53 failover routing, its health checks, the
    // alarms and the failover/failback Lambdas are rendered. dns.name must then be inside the zone.
    // hostedZone: { id: "Z0123456789ABC", name: "example.com" },
    // HTTPS (a certificate for dns.name, and a 301 from HTTP) needs hostedZone.
    https: false,
    singleInstance: { dataVolumeGiB: 8 },
    logRetentionDays: 30,
  },
  // Seed 004 (topology "ecs"): the service as ECS tasks on the web group's instances.
  ecs: {
    task: { cpuUnits: 256, memoryMiB: 256 },
    repository: { untaggedExpiryDays: 1 },
  },
  // GitHub Actions deploys (README, "Deploy from GitHub"): the repository the stayup-ci stack's
  // deploy roles trust; each role trusts only jobs in the GitHub environment of its name.
  // ci: { github: { owner: "your-org", repository: "stayup", branch: "main", protectedEnvironments: ["prod"] } },
  // An account per environment keeps dev from prod (docs/deploy-to-aws.md, "Environments apart"):
  // environments.<env>.aws = { account: "123456789012" }, and optionally environments.<env>.regions.
  environments: {
    dev: {
      web: {
        capacity: { min: 2, desired: 2, max: 4 },
        instanceTypes: ["t3.micro", "t3a.micro"],
        scaleInProtection: false,
      },
      network: { natGateways: "one" },
      // Multi-AZ in dev too: every drill, redis-failover included, runs on the stack a new user gets.
      // Each region its own Redis; crossRegion "none" (the default) resets the count on a region
      // failover; "replica" (a Global Datastore on AWS) needs cache.r7g.large or cache.m7g.large and up.
      redis: { nodeType: "cache.t4g.micro", multiAz: true },
      deletionProtection: false,
      ecs: {
        tasks: { min: 2, desired: 2, max: 4 },
        // Fewest instances (cost); the lose-container-instance drill shows what that risks.
        placement: "binpack",
        clusterTargetUtilizationPercent: 100,
        taggedImagesKept: 3,
      },
    },
    prod: {
      web: {
        capacity: { min: 3, desired: 3, max: 6 },
        instanceTypes: ["t3.small", "t3a.small"],
        scaleInProtection: true,
      },
      network: { natGateways: "one-per-az" },
      redis: { nodeType: "cache.t4g.small", multiAz: true },
      deletionProtection: true,
      ecs: {
        tasks: { min: 3, desired: 3, max: 6 },
        // Over AZs, then instances: losing one container instance loses one task, not all.
        placement: "spread",
        // Headroom: ECS adds an instance before the cluster is full, so a replacement task has room.
        clusterTargetUtilizationPercent: 75,
        taggedImagesKept: 10,
      },
    },
  },
});
