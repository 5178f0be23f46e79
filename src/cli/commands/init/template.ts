import type { DetectedService } from "./detect.ts";

const q = (value: string) => JSON.stringify(value);
/** Text for a \`//\` comment: one line, whatever a package.json script held. */
const oneLine = (value: string) => value.replace(/\s+/g, " ");

/**
 * The starting description `stayup init` writes: the demo's stack (tutorial 07: three AZs behind a
 * load balancer, Redis with Sentinel, a pilot-light second region) running the project's service.
 * Every setting is written out, so the file is also the list of what can be changed.
 */
export function renderDescription(service: DetectedService): string {
  return `import { defineStack } from "stayup";

/**
 * Written by \`stayup init\`. Run it locally with \`npx stayup up\`, break it with
 * \`npx stayup drill kill-instance\`, render it for AWS with \`npx stayup synth\`.
 * Every field: node_modules/stayup/docs/description.md; every command: \`npx stayup --help\`.
 */
export default defineStack({
  name: ${q(service.name)},
  // "load-balanced", "single-instance" or "ecs"; \`--topology\` overrides it per run.
  topology: "load-balanced",
  regions: {
    primary: { name: "eu-west-3", availabilityZones: ["eu-west-3a", "eu-west-3b", "eu-west-3c"] },
    // A second region that takes over through DNS failover (the region-outage drill).
    secondary: {
      name: "us-east-1",
      availabilityZones: ["us-east-1a", "us-east-1b", "us-east-1c"],
      standby: { mode: "pilot-light", warmCapacity: 1 },
      localHost: "127.0.0.2",
    },
  },
  dns: {
    name: "app.stayup.test",
    ttlSeconds: 1,
    healthCheck: {
      // Only the PRIMARY record is checked: Route 53 answers the SECONDARY as soon as it fails.
      checkedRecords: "primary",
      // Longer than a recovery inside the region (a Redis failover): 70-80 s on AWS, 7-8 s locally.
      failureThreshold: 8,
      aws: { intervalSeconds: 10 },
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
    aws: { healthCheckGracePeriodSeconds: 180 },
    local: { healthCheckGracePeriodMs: 15_000, replacementDelayMs: 5_000 },
  },
  notifications: { webhooks: [], emails: [] },
  webService: {
    // The port each instance listens on on AWS (from ${oneLine(service.portFrom)}). Locally every instance
    // gets its own free port in $PORT, with $HOST, $STAYUP_INSTANCE_ID, $STAYUP_AZ, $STAYUP_REGION
    // and $REDIS_URL: the service reads PORT (and REDIS_URL if it uses Redis), nothing else.
    port: ${service.port},
    // How one instance starts (from ${oneLine(service.commandFrom)}), run in workingDirectory
    // (relative to this file).
    start: { command: ${q(service.command)}, workingDirectory: "." },
    // Where drills send their traffic; \`stayup drill --path\` overrides it per run.
    trafficPath: "/",
    // A path answering a number that must never go back (a counter in Redis, say) lets the drills
    // measure continuity and lost writes; without it they report those figures as not measured.
    // consistencyProbePath: "/count",
  },
  targetGroup: {
    healthCheck: {
      // From ${oneLine(service.healthPathFrom)}: a cheap path that answers 200 while the instance can serve.
      path: ${q(service.healthPath)},
      healthyThreshold: 2,
      unhealthyThreshold: 2,
      aws: { intervalSeconds: 10, timeoutSeconds: 5 },
      local: { intervalMs: 500, timeoutMs: 250 },
    },
    deregistrationDelaySeconds: 30,
    aws: { algorithm: "weighted_random", anomalyMitigation: true },
  },
  loadBalancer: {
    // The address clients (and drills) use locally.
    local: { host: "127.0.0.1", port: 8080 },
    outlierDetection: {
      consecutiveFailures: 5,
      baseEjectionMs: 5000,
      maxEjectionMs: 60_000,
      maxEjectionPercent: 50,
    },
    retries: { maxAttempts: 3, perTryTimeoutMs: 500, budgetPercent: 20, minRetryConcurrency: 10 },
  },
  redis: { localPort: 6390 },
  aws: {
    vpcCidr: "10.0.0.0/16",
    https: false,
    singleInstance: { dataVolumeGiB: 8 },
    logRetentionDays: 30,
  },
  ecs: {
    task: { cpuUnits: 256, memoryMiB: 256 },
    repository: { untaggedExpiryDays: 1 },
  },
  environments: {
    dev: {
      web: {
        capacity: { min: 2, desired: 2, max: 4 },
        instanceTypes: ["t3.micro", "t3a.micro"],
        scaleInProtection: false,
      },
      network: { natGateways: "one" },
      redis: { nodeType: "cache.t4g.micro", multiAz: true },
      deletionProtection: false,
      ecs: {
        tasks: { min: 2, desired: 2, max: 4 },
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
        placement: "spread",
        clusterTargetUtilizationPercent: 75,
        taggedImagesKept: 10,
      },
    },
  },
});
`;
}
