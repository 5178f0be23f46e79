/**
 * The stayup description of this example: \`npx stayup up\` runs it locally, \`npx stayup synth\` renders
 * it for AWS. A plain object (it imports nothing, not even stayup): stayup validates it when it loads
 * it and names any field that is wrong, with the fix.
 */
export default {
  name: "python-stdlib",
  topology: "load-balanced", // or "single-instance", "ecs"; \`--topology\` overrides it per run
  regions: { primary: { name: "eu-west-3", availabilityZones: ["eu-west-3a", "eu-west-3b", "eu-west-3c"] } },
  webService: {
    port: 8000,
    // How one instance starts, in this folder: it gets PORT, HOST, STAYUP_INSTANCE_ID, STAYUP_AZ,
    // STAYUP_REGION and REDIS_URL in its environment.
    start: { command: "python3 server.py", workingDirectory: "." },
    // Where drills send their traffic.
    trafficPath: "/",
  },
  targetGroup: {
    healthCheck: {
      path: "/health",
      healthyThreshold: 2,
      unhealthyThreshold: 2,
      aws: { intervalSeconds: 10, timeoutSeconds: 5 },
      local: { intervalMs: 500, timeoutMs: 250 },
    },
    deregistrationDelaySeconds: 30,
  },
  scaling: {
    targetCpuPercent: 50,
    aws: { warmupSeconds: 120, scaleInCooldownSeconds: 300 },
    local: { evaluationIntervalMs: 1000, evaluationPeriods: 2, warmupMs: 2000, scaleInCooldownMs: 5000 },
  },
  notifications: { webhooks: [], emails: [] },
  loadBalancer: {
    local: { host: "127.0.0.1", port: 8080 },
    outlierDetection: {
      consecutiveFailures: 5,
      baseEjectionMs: 5000,
      maxEjectionMs: 60_000,
      maxEjectionPercent: 50,
    },
    retries: { maxAttempts: 3, perTryTimeoutMs: 500, budgetPercent: 20, minRetryConcurrency: 10 },
  },
  redis: { localPort: 0 },
  aws: { vpcCidr: "10.0.0.0/16", https: false, singleInstance: { dataVolumeGiB: 8 }, logRetentionDays: 30 },
  ecs: { task: { cpuUnits: 256, memoryMiB: 256 }, repository: { untaggedExpiryDays: 1 } },
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
};
