import { defineStack } from "./src/stack/index.ts";

/**
 * The stack stayup runs: locally with `npm start`, on AWS with `stayup deploy`.
 * Defaults reproduce tutorial 07 (instances spread over three AZs behind a load balancer,
 * the counter in Redis) with the published defects fixed.
 */
export default defineStack({
  name: "stayup",
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
      failureThreshold: 2,
      aws: { intervalSeconds: 10 },
      local: { intervalMs: 500 },
    },
    local: { host: "127.0.0.1", port: 5353 },
  },
  scaling: {
    targetCpuPercent: 50,
    aws: { warmupSeconds: 120, scaleInCooldownSeconds: 300 },
    local: { evaluationIntervalMs: 1000, evaluationPeriods: 2, warmupMs: 2000, scaleInCooldownMs: 5000 },
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
  },
  loadBalancer: { local: { host: "127.0.0.1", port: 8080 } },
  redis: { localPort: 6390 },
  aws: {
    vpcCidr: "10.0.0.0/16",
    topology: "load-balanced",
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
  environments: {
    dev: {
      web: {
        capacity: { min: 2, desired: 2, max: 4 },
        instanceTypes: ["t3.micro", "t3a.micro"],
        scaleInProtection: false,
      },
      network: { natGateways: "one" },
      // Multi-AZ in dev too: every drill, redis-failover included, runs on the stack a new user gets.
      redis: { nodeType: "cache.t4g.micro", multiAz: true },
      deletionProtection: false,
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
    },
  },
});
