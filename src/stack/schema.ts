import { z } from "zod";
import { type EnvironmentName, environmentNames, type Topology, topologies } from "./names.ts";
import { ciSchema } from "./ci-schema.ts";
import { ecsEnvironmentSettings, ecsSettings, taskFitProblems } from "./ecs.ts";
import { LOAD_BALANCER_LIMIT_DEFAULTS } from "./load-balancer-limits.ts";
import { globalDatastoreNodeTypeProblem } from "./global-datastore.ts";
import { nightlyStopSchema } from "./nightly-stop.ts";
import { regionTimingProblems } from "./region-failover-timing.ts";
import { awsServiceArtifactProblems, awsServiceArtifactSchema } from "./service-artifact.ts";

/**
 * The one stack description. Every renderer (the local runtime, the AWS CDK app) reads the
 * resolved form of this schema; none of them keeps settings of its own.
 */

const awsRegionName = z
  .string()
  .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "must be an AWS region name such as eu-west-3 or us-east-1");

const availabilityZoneList = z
  .array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/, "must be an AZ name such as eu-west-3a"))
  .min(1, "list at least one availability zone (three for high availability)")
  .max(6, "at most 6 availability zones");

const region = z
  .object({
    name: awsRegionName,
    availabilityZones: availabilityZoneList,
  })
  .strict()
  .superRefine((r, ctx) => {
    const seen = new Set<string>();
    r.availabilityZones.forEach((az, i) => {
      if (!az.startsWith(r.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["availabilityZones", i],
          message: `"${az}" is not in region ${r.name}; use ${r.name}a, ${r.name}b, ...`,
        });
      }
      if (seen.has(az)) {
        ctx.addIssue({ code: "custom", path: ["availabilityZones", i], message: `"${az}" is listed twice` });
      }
      seen.add(az);
    });
  });

const port = z.number().int().min(0, "must be 0 (any free port) to 65535").max(65535, "must be ≤ 65535");

const secondaryRegion = z
  .object({
    name: awsRegionName,
    availabilityZones: availabilityZoneList,
    /**
     * What the secondary runs before a failover: `pilot-light` nothing (0 instances), `warm` a
     * minimum (`warmCapacity`), `active` the full group, serving always.
     */
    standby: z
      .object({
        mode: z.enum(["pilot-light", "warm", "active"], {
          message: 'must be "pilot-light", "warm" or "active"',
        }),
        warmCapacity: z.number().int().min(1, "must be at least 1").max(100, "at most 100"),
      })
      .strict(),
    /** Where the secondary's load balancer listens locally: a second loopback address, same port. */
    localHost: z
      .ipv4({ message: "must be an IPv4 loopback address such as 127.0.0.2" })
      .refine((h) => h.startsWith("127."), "must be a loopback address (127.x.y.z)"),
  })
  .strict();

/** Where a stack runs: the top-level `regions`, or an environment's own (`environments.<env>.regions`). */
const regions = z.object({ primary: region, secondary: secondaryRegion.optional() }).strict();

const dnsFailover = z
  .object({
    /** The name clients resolve; answered by Route 53 on AWS and by the local DNS server locally. */
    name: z.string().regex(/^([a-z0-9-]+\.)+[a-z]{2,}$/, "must be a DNS name such as app.example.com"),
    ttlSeconds: z.number().int().min(0, "must be 0 to 86400").max(86_400, "must be 0 to 86400"),
    healthCheck: z
      .object({
        /**
         * Which failover records carry a health check. `primary` (the default): the SECONDARY has
         * none, so Route 53 answers it as soon as the primary fails. `both`: the SECONDARY has one
         * too, and Route 53 then answers the PRIMARY whenever the secondary is unhealthy, whatever
         * the primary's health (ResourceRecordSet.Failover): right for a secondary that always
         * serves, refused for a pilot light, which has no instance to pass its check until it booted.
         */
        checkedRecords: z
          .enum(["primary", "both"], { message: 'must be "primary" or "both"' })
          .default("primary"),
        /**
         * Consecutive failed checks before the primary counts as down (Route 53 allows 1-10). With
         * the interval, longer than a recovery inside the region may take (region-failover-timing.ts).
         */
        failureThreshold: z
          .number()
          .int()
          .min(1, "Route 53 allows 1 to 10")
          .max(10, "Route 53 allows 1 to 10"),
        aws: z
          .object({
            intervalSeconds: z.union([z.literal(10), z.literal(30)], {
              message: "Route 53 checks every 10 or 30 seconds",
            }),
          })
          .strict(),
        local: z
          .object({
            intervalMs: z.number().int().min(50, "must be 50 ms or more").max(60_000, "at most 60000 ms"),
            /**
             * How long a probe waits for the answer (default: half the interval). Route 53 waits 4 s
             * to connect and 2 s for the answer, whatever its interval: a busy region answers late,
             * and only a region that does not answer at all, or refuses, is down.
             */
            timeoutMs: z
              .number()
              .int()
              .min(10, "must be 10 ms or more")
              .max(60_000, "at most 60000 ms")
              .optional(),
          })
          .strict(),
      })
      .strict(),
    /** The local DNS server (UDP) that answers `name` with failover routing. */
    local: z.object({ host: z.ipv4({ message: "must be an IPv4 address" }), port }).strict(),
  })
  .strict();

const scaling = z
  .object({
    /** Target tracking on the group's average CPU utilization. */
    targetCpuPercent: z.number().min(1, "must be 1 to 100").max(100, "must be 1 to 100"),
    aws: z
      .object({
        /** Seconds a new instance's metrics are ignored (EC2 Auto Scaling's instance warm-up). */
        warmupSeconds: z.number().int().min(0, "must be 0 or more"),
        /** Seconds after a scale-in before another (target tracking's scale-in cooldown). */
        scaleInCooldownSeconds: z.number().int().min(0, "must be 0 or more"),
      })
      .strict(),
    local: z
      .object({
        /** How often instance CPU is sampled and the policy evaluated. */
        evaluationIntervalMs: z.number().int().min(100, "must be 100 ms or more"),
        /** Consecutive evaluations above target before scaling out. */
        evaluationPeriods: z.number().int().min(1, "must be at least 1"),
        warmupMs: z.number().int().min(0, "must be 0 or more"),
        scaleInCooldownMs: z.number().int().min(0, "must be 0 or more"),
      })
      .strict(),
  })
  .strict();

const instanceGroup = z
  .object({
    aws: z
      .object({
        /** Seconds after launch before the ELB health check may mark an instance for replacement. */
        healthCheckGracePeriodSeconds: z
          .number()
          .int()
          .min(0, "must be 0 to 7200 s")
          .max(7200, "must be 0 to 7200 s"),
      })
      .strict(),
    local: z
      .object({
        /** After launch, how long a never-healthy instance has to pass before it is replaced. */
        healthCheckGracePeriodMs: z
          .number()
          .int()
          .min(1000, "must be 1000 ms or more")
          .max(600_000, "at most 600000 ms"),
        /**
         * How long a running instance stays unhealthy (out of rotation) before it is replaced; never
         * while every instance is unhealthy (that is overload, and replacing would make it worse).
         */
        replacementDelayMs: z.number().int().min(0, "must be 0 or more").max(600_000, "at most 600000 ms"),
      })
      .strict(),
  })
  .strict();

const notifications = z
  .object({
    /** Webhooks that receive an SNS-shaped JSON message on failover and failback. */
    webhooks: z.array(z.url({ message: "must be an http(s) URL" })),
    /** E-mail subscriptions of the SNS topic on AWS. */
    emails: z.array(z.email({ message: "must be an e-mail address" })),
  })
  .strict();

const capacity = z
  .object({
    min: z.number().int().min(0, "must be 0 or more"),
    desired: z.number().int().min(0, "must be 0 or more"),
    max: z.number().int().min(1, "must be at least 1").max(100, "at most 100"),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.desired < c.min)
      ctx.addIssue({
        code: "custom",
        path: ["desired"],
        message: `must be ≥ min (${c.min}), got ${c.desired}`,
      });
    if (c.desired > c.max)
      ctx.addIssue({
        code: "custom",
        path: ["desired"],
        message: `must be ≤ max (${c.max}), got ${c.desired}`,
      });
    if (c.min > c.max)
      ctx.addIssue({ code: "custom", path: ["min"], message: `must be ≤ max (${c.max}), got ${c.min}` });
  });

const healthCheck = z
  .object({
    path: z.string().startsWith("/", "must start with /"),
    healthyThreshold: z.number().int().min(2, "must be 2 to 10 (the ALB's range)").max(10, "must be 2 to 10"),
    unhealthyThreshold: z
      .number()
      .int()
      .min(2, "must be 2 to 10 (the ALB's range)")
      .max(10, "must be 2 to 10"),
    /** Timings on AWS: the ALB accepts an interval of 5-300 s and a timeout of 2-120 s. */
    aws: z
      .object({
        intervalSeconds: z
          .number()
          .int()
          .min(5, "the ALB allows 5 to 300 s")
          .max(300, "the ALB allows 5 to 300 s"),
        timeoutSeconds: z
          .number()
          .int()
          .min(2, "the ALB allows 2 to 120 s")
          .max(120, "the ALB allows 2 to 120 s"),
      })
      .strict()
      .refine((t) => t.timeoutSeconds < t.intervalSeconds, {
        path: ["timeoutSeconds"],
        message: "must be shorter than intervalSeconds",
      }),
    /** Timings of the local runtime, where a check costs nothing and sub-second detection is possible. */
    local: z
      .object({
        intervalMs: z.number().int().min(50, "must be 50 ms or more").max(60_000, "at most 60000 ms"),
        timeoutMs: z.number().int().min(10, "must be 10 ms or more").max(60_000, "at most 60000 ms"),
      })
      .strict()
      .refine((t) => t.timeoutMs < t.intervalMs, {
        path: ["timeoutMs"],
        message: "must be shorter than intervalMs",
      }),
  })
  .strict();

const environmentSettings = z
  .object({
    web: z
      .object({
        capacity,
        /** Preferred first; more than one lets the group launch when one type is short in an AZ. */
        instanceTypes: z
          .array(z.string().regex(/^[a-z0-9]+\.[a-z0-9]+$/, "must be an EC2 instance type such as t3.micro"))
          .min(1, "list at least one instance type (two for capacity resilience)")
          .refine((types) => new Set(types).size === types.length, "lists an instance type twice"),
        /**
         * Protects the ECS topology's container instances from scale-in (ECS's managed termination
         * protection lifts it once an instance runs no task; seed 004: on in prod). The
         * load-balanced web groups scale in and are never protected.
         */
        scaleInProtection: z.boolean(),
      })
      .strict(),
    network: z
      .object({
        /** 1 saves money (dev); one per AZ keeps egress alive when an AZ fails (prod). */
        natGateways: z.union([z.literal("one"), z.literal("one-per-az")]),
      })
      .strict(),
    redis: z
      .object({
        nodeType: z
          .string()
          .regex(/^cache\.[a-z0-9]+\.[a-z0-9]+$/, "must be a node type such as cache.t4g.micro"),
        /** A primary and a replica in different AZs with automatic failover. */
        multiAz: z.boolean(),
        /**
         * What of Redis crosses to the secondary region (each region has its own Redis group).
         * `none` (the default): the secondary counts from what it holds, so a region failover resets
         * the count and a failback brings the primary's back. `replica`: the secondary's group
         * replicates from the primary's (an ElastiCache Global Datastore on AWS, large M/R node
         * types only) and is promoted on failover. See docs/cross-region-redis.md.
         */
        crossRegion: z.enum(["none", "replica"], { message: 'must be "none" or "replica"' }).default("none"),
      })
      .strict(),
    /** Deletion protection on the load balancer, Redis and DNS zone (seed 004: on in prod). */
    deletionProtection: z.boolean(),
    /** The ecs topology's per-environment settings (seed 004's table). */
    ecs: ecsEnvironmentSettings,
    /** Seed 003: the group stopped at night (scheduled actions on AWS); off when absent. */
    nightlyStop: nightlyStopSchema.optional(),
    /**
     * The environment's own regions, in place of the top-level `regions` (the whole object: primary
     * and, if any, secondary). Its CI deploy role reaches only these.
     */
    regions: regions.optional(),
    /**
     * The AWS account the environment lives in. Given for one environment, required for every one.
     * Separate accounts are what keeps dev from prod: CDK's bootstrap roles are account-wide, so a
     * role allowed to deploy anything in an account can deploy everything in it
     * (docs/deploy-to-aws.md, "Environments apart").
     */
    aws: z
      .object({
        account: z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id such as "123456789012"'),
      })
      .strict()
      .optional(),
  })
  .strict();

const topology = z.enum(topologies, {
  message: `must be one of ${topologies.map((t) => `"${t}"`).join(", ")}`,
});

const cidr = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/(\d|[12]\d|3[0-2])$/, "must be an IPv4 CIDR such as 203.0.113.0/24");

const aws = z
  .object({
    /** The VPC's address range; each tier gets a /24 per AZ out of it. */
    vpcCidr: cidr.refine(
      (c) => Number(c.split("/")[1]) <= 20,
      "must be /20 or larger to hold 3 tiers × 6 AZs of /24",
    ),
    /** Shell access: Session Manager always; an SSH bastion only if this is set. */
    bastion: z
      .object({
        /** Who may reach the bastion's port 22 (never 0.0.0.0/0). */
        allowedCidr: cidr.refine((c) => !c.endsWith("/0"), "must not open SSH to the whole internet"),
        instanceType: z
          .string()
          .regex(/^[a-z0-9]+\.[a-z0-9]+$/, "must be an EC2 instance type such as t3.nano"),
      })
      .strict()
      .optional(),
    /**
     * The Route 53 public hosted zone that holds `dns.name` (create it once, outside stayup, and
     * delegate to it). With it the load balancers get DNS names, HTTPS can be validated and, with a
     * secondary region, Route 53 failover routing is rendered. Without it nothing touches DNS.
     */
    hostedZone: z
      .object({
        id: z
          .string()
          .regex(
            /^[A-Z0-9]{10,32}$/,
            "must be a Route 53 hosted zone id such as Z0123456789ABC (without /hostedzone/)",
          ),
        name: z.string().regex(/^([a-z0-9-]+\.)+[a-z]{2,}$/, "must be the zone's name such as example.com"),
      })
      .strict()
      .optional(),
    /**
     * HTTPS on the load balancer: an ACM certificate for `dns.name`, validated in `hostedZone`, and a
     * 301 from HTTP to HTTPS. Off, the load balancer serves plain HTTP.
     */
    https: z.boolean().default(false),
    singleInstance: z
      .object({
        /** Size of the data volume that follows the instance (Redis's append-only file lives there). */
        dataVolumeGiB: z.number().int().min(1, "must be 1 to 16384 GiB").max(16384, "must be 1 to 16384 GiB"),
      })
      .strict(),
    /** How long CloudWatch keeps instance logs and VPC flow logs. */
    logRetentionDays: z.union(
      [
        1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
        3653,
      ].map((n) => z.literal(n)) as unknown as [
        z.ZodLiteral<number>,
        z.ZodLiteral<number>,
        ...z.ZodLiteral<number>[],
      ],
      { message: "must be a CloudWatch Logs retention: 1, 3, 5, 7, 14, 30, 60, 90, 180, 365, ... days" },
    ),
  })
  .strict();

export type EnvironmentSettings = z.infer<typeof environmentSettings>;

const intIn = (min: number, max: number, unit = "") =>
  z
    .number()
    .int(`must be a whole number from ${min} to ${max}${unit}`)
    .min(min, `must be ${min} to ${max}${unit}`)
    .max(max, `must be ${min} to ${max}${unit}`);

/**
 * Passive health on real traffic (Envoy's outlier detection; on AWS the target group's anomaly
 * mitigation plays this part): a target that answers 5xx or times out this many times in a row
 * leaves the local load balancer's rotation for `baseEjectionMs` × the times it was ejected.
 * Its health checks, and so the instance group, are not affected: it is slow or failing, not dead.
 */
const outlierDetection = z
  .object({
    consecutiveFailures: intIn(1, 1000),
    baseEjectionMs: intIn(100, 600_000, " ms"),
    /** The longest an ejection may grow to on repeats. */
    maxEjectionMs: intIn(100, 3_600_000, " ms"),
    /** Never more than this share of the group is ejected at once (at least one target stays). */
    maxEjectionPercent: intIn(0, 100, " %"),
  })
  .strict()
  .refine((o) => o.maxEjectionMs >= o.baseEjectionMs, {
    path: ["maxEjectionMs"],
    message: "must be ≥ baseEjectionMs",
  });

/**
 * The local load balancer's retries of idempotent requests (GET, HEAD, PUT, DELETE, ...) on another
 * target. A try that has sent no response headers after `perTryTimeoutMs` is abandoned for another
 * target when one is free and the budget allows; otherwise it is left to finish.
 */
const retries = z
  .object({
    /** Targets one request may try, the first included. */
    maxAttempts: intIn(1, 10),
    perTryTimeoutMs: intIn(10, 60_000, " ms"),
    /** Retries in flight may be at most this share of the requests in flight (Envoy's retry budget)... */
    budgetPercent: intIn(0, 100, " %"),
    /** ...but this many retries are always allowed, so a quiet balancer can still retry. */
    minRetryConcurrency: intIn(0, 1000),
  })
  .strict();

/** A request path: from `/`, printable, no spaces (a drill sends it as it is). */
const httpPath = z
  .string()
  .regex(/^\/[\x21-\x7e]*$/, 'must be a path starting with / and without spaces, such as "/" or "/count"');

/**
 * The user's service: a command line and the folder it runs in. The command is split on spaces and
 * started without a shell (`node server.js`); one with shell syntax (quotes, `$`, `&&`, pipes,
 * redirections...) is run by `/bin/sh -c` instead. Either way it is its own process group, stopped whole.
 */
const serviceStart = z
  .object({
    /** e.g. "node server.js", "python3 app.py", "npm start". */
    command: z
      .string()
      .trim()
      .min(1, 'must name the command that starts one instance, such as "node server.js"')
      .refine((c) => !/[\r\n\0]/.test(c), "must be one line (chain commands with && if you must)"),
    /**
     * The folder the command runs in, relative to the description file's folder (or absolute); it
     * must exist when `stayup up` starts the stack.
     * @default "." (the description file's folder)
     */
    workingDirectory: z.string().min(1, 'must be a folder such as "." or "service"').default("."),
  })
  .strict();

const D = LOAD_BALANCER_LIMIT_DEFAULTS;
const MiB = 1024 * 1024;

/**
 * What clients may hold of the local load balancer, so that none can exhaust it (the runtime that
 * runs it also runs health checks, failover and DNS): slow requests, connection floods, pipelining
 * without reading answers, large bodies. With several balancer processes (`workers`), the totals
 * (`maxClientConnections`, `maxBufferedRequestBytesTotal`, `maxConnectionsPerTarget`) are shared
 * out among them.
 */
const loadBalancerLimits = z
  .object({
    /**
     * A request's head and body must arrive within this long of its first byte (of the connection's
     * accept, for its first request); 408 and closed after. The ALB has no such deadline: its idle
     * timeout (60 s) restarts with every byte, so a body trickled a byte every 25 s is held there.
     * @default 60000 (60 s)
     */
    requestTimeoutMs: intIn(100, 3_600_000, " ms").default(D.requestTimeoutMs),
    /**
     * Client connections open at once (per listener); a new one beyond it is closed as it is
     * accepted (the client sees a reset), told by a `load-balancer.connections-refused` event. The
     * ALB has no such cap (it scales out).
     * @default 4096
     */
    maxClientConnections: intIn(1, 1_000_000).default(D.maxClientConnections),
    /**
     * A request's line and all its header fields together (431 above). The ALB allows 16 KB for the
     * request line and for each field, 64 KB for all fields, and answers 400 beyond.
     * @default 16384 (16 KiB)
     */
    maxRequestHeadBytes: intIn(1024, 1 * MiB, " bytes").default(D.maxRequestHeadBytes),
    /**
     * One request's body, held whole so the request can be retried on another target (413 above,
     * at once when its Content-Length says so). The ALB streams bodies and sets no such limit.
     * @default 10485760 (10 MiB)
     */
    maxRequestBodyBytes: intIn(0, 1024 * MiB, " bytes").default(D.maxRequestBodyBytes),
    /**
     * All requests' bodies held at once (per balancer process); a request whose body would go past
     * it gets 503. At least `maxRequestBodyBytes`.
     * @default 67108864 (64 MiB)
     */
    maxBufferedRequestBytesTotal: intIn(0, 16 * 1024 * MiB, " bytes").default(D.maxBufferedRequestBytesTotal),
    /**
     * Answer bytes written to a client and not yet read by it: past this, the balancer stops reading
     * that client's requests until it reads (write backpressure).
     * @default 1048576 (1 MiB)
     */
    maxQueuedResponseBytes: intIn(16 * 1024, 1024 * MiB, " bytes").default(D.maxQueuedResponseBytes),
    /**
     * Connections to one target; further requests wait for one, in order. The ALB has no such
     * limit.
     * @default 128
     */
    maxConnectionsPerTarget: intIn(1, 100_000).default(D.maxConnectionsPerTarget),
    /**
     * A request waiting that long for a connection to its target is never sent; another target is
     * tried, or it gets 503.
     * @default 60000 (60 s)
     */
    targetQueueTimeoutMs: intIn(10, 3_600_000, " ms").default(D.targetQueueTimeoutMs),
  })
  .strict()
  .refine((l) => l.maxBufferedRequestBytesTotal >= l.maxRequestBodyBytes, {
    path: ["maxBufferedRequestBytesTotal"],
    message:
      "must be ≥ maxRequestBodyBytes (one largest body must fit): raise it, or lower maxRequestBodyBytes",
  });

export type LoadBalancerLimits = z.output<typeof loadBalancerLimits>;

type RegionsInput = z.infer<typeof regions>;

/** The checks a secondary region needs, on the top-level regions or an environment's own. */
function checkSecondaryRegion(
  d: {
    dns?: { healthCheck: { checkedRecords: string } };
    loadBalancer: { local: { host: string } };
    environments: Record<EnvironmentName, { web: { capacity: { max: number } } }>;
  },
  r: RegionsInput,
  at: (string | number)[],
  envs: readonly EnvironmentName[],
  ctx: z.RefinementCtx,
): void {
  const secondary = r.secondary;
  if (!secondary) return;
  if (secondary.name === r.primary.name) {
    ctx.addIssue({
      code: "custom",
      path: [...at, "secondary", "name"],
      message: "must differ from the primary region",
    });
  }
  secondary.availabilityZones.forEach((az, i) => {
    if (!az.startsWith(secondary.name)) {
      ctx.addIssue({
        code: "custom",
        path: [...at, "secondary", "availabilityZones", i],
        message: `"${az}" is not in region ${secondary.name}`,
      });
    }
  });
  if (!d.dns && envs.length > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["dns"],
      message: "is required with a secondary region (it routes the failover)",
    });
  }
  if (d.dns?.healthCheck.checkedRecords === "both" && secondary.standby.mode === "pilot-light") {
    ctx.addIssue({
      code: "custom",
      path: ["dns", "healthCheck", "checkedRecords"],
      message:
        'cannot be "both" with a pilot-light secondary: it has no instance to pass its health check until the alarm has started one, and while the secondary is unhealthy Route 53 answers the failed primary; use "primary", or regions.secondary.standby.mode "warm" or "active"',
    });
  }
  if (secondary.localHost === d.loadBalancer.local.host) {
    ctx.addIssue({
      code: "custom",
      path: [...at, "secondary", "localHost"],
      message: `must differ from loadBalancer.local.host (${d.loadBalancer.local.host}): DNS answers an address, not a port`,
    });
  }
  for (const env of envs) {
    const max = d.environments[env].web.capacity.max;
    if (secondary.standby.warmCapacity > max) {
      ctx.addIssue({
        code: "custom",
        path: [...at, "secondary", "standby", "warmCapacity"],
        message: `must be ≤ environments.${env}.web.capacity.max (${max})`,
      });
    }
  }
}

export const stackDescriptionSchema = z
  .object({
    /** Lower-case name used as a prefix for every named resource, with the environment appended. */
    name: z
      .string()
      .regex(
        /^[a-z][a-z0-9-]{1,20}$/,
        "must be 2-21 lower-case letters, digits or dashes, starting with a letter",
      ),
    topology,
    regions,
    /** DNS failover between the regions (Route 53 failover records locally mirrored). */
    dns: dnsFailover.optional(),
    scaling,
    /** The group's replacement rules (the Auto Scaling group's health-check grace period and more). */
    instanceGroup: instanceGroup.default({
      aws: { healthCheckGracePeriodSeconds: 180 },
      local: { healthCheckGracePeriodMs: 15_000, replacementDelayMs: 5_000 },
    }),
    notifications,
    webService: z
      .object({
        /** Port every instance listens on behind the load balancer (on AWS; locally each takes a free port). */
        port: port.refine((p) => p > 0, "must be a fixed port for the instances"),
        /**
         * How one instance of *your* service starts (any language): the command, run in
         * `workingDirectory` with PORT, HOST, STAYUP_INSTANCE_ID, STAYUP_AZ, STAYUP_REGION and
         * REDIS_URL in its environment (docs/your-service.md).
         * @default absent: the built-in counter (the demo)
         */
        start: serviceStart.optional(),
        /**
         * Where drills send their traffic (GET); `stayup drill --path` overrides it per run.
         * @default "/"
         */
        trafficPath: httpPath.optional(),
        /**
         * A path answering a number (the body, or JSON's `count`) that must never go back, such as a
         * counter in Redis: drills then measure continuity and acknowledged writes from it.
         * @default absent: those figures are reported as not measured (the counter measures its own)
         */
        consistencyProbePath: httpPath.optional(),
        /**
         * What AWS runs of your service (the EC2 folder and command, the container's command).
         * @default webService.start's command and folder; with neither, the built-in counter
         */
        aws: awsServiceArtifactSchema.optional(),
      })
      .strict()
      .superRefine((web, ctx) => {
        for (const p of awsServiceArtifactProblems(web)) ctx.addIssue({ code: "custom", ...p });
      }),
    targetGroup: z
      .object({
        healthCheck,
        /**
         * How the ALB picks a target. `weighted_random` with `anomalyMitigation` (the default) sends
         * less traffic to a target that fails more than its peers while its health check passes.
         */
        aws: z
          .object({
            algorithm: z.enum(["weighted_random", "round_robin", "least_outstanding_requests"], {
              message: 'must be "weighted_random", "round_robin" or "least_outstanding_requests"',
            }),
            anomalyMitigation: z.boolean(),
          })
          .strict()
          .refine((t) => !t.anomalyMitigation || t.algorithm === "weighted_random", {
            path: ["anomalyMitigation"],
            message:
              'needs algorithm "weighted_random" (the ALB mitigates anomalies only there); set it to false',
          })
          .default({ algorithm: "weighted_random", anomalyMitigation: true }),
        /** How long a deregistered target keeps finishing its requests (the ALB default is 300 s). */
        deregistrationDelaySeconds: z
          .number()
          .int()
          .min(0, "must be 0 to 3600 s")
          .max(3600, "must be 0 to 3600 s"),
      })
      .strict(),
    loadBalancer: z
      .object({
        /** The local listener; on AWS the ALB listens on 80 (and 443 with a certificate). */
        local: z
          .object({
            host: z.ipv4({ message: "must be an IPv4 address such as 127.0.0.1" }),
            port,
            /**
             * Processes sharing the listener (as nginx's workers): 1 runs the balancer inside the
             * runtime; more fork workers that get target health from it.
             */
            workers: intIn(1, 16).optional(),
            /**
             * HTTPS locally, as the ALB with `aws.https`: a listener on this port with a certificate
             * for dns.name from a local certificate authority, and a 301 from `port` to it.
             */
            httpsPort: port.optional(),
            /** What one client may hold of the balancer (defaults fit any use; see above). */
            limits: loadBalancerLimits.prefault({}),
          })
          .strict(),
        outlierDetection,
        retries,
      })
      .strict(),
    redis: z
      .object({
        /** Port of the local redis-server the runtime starts (0 picks a free one). */
        localPort: port,
      })
      .strict(),
    aws,
    /** GitHub Actions deploys: the stayup-ci stack's OIDC trust (see ci-schema.ts). */
    ci: ciSchema(environmentNames).optional(),
    /** The ecs topology's task and image repository (per-environment settings: environments.<env>.ecs). */
    ecs: ecsSettings,
    environments: z.object({ dev: environmentSettings, prod: environmentSettings }).strict(),
  })
  .strict()
  .superRefine((d, ctx) => {
    const zone = d.aws.hostedZone;
    if (d.aws.https && !zone) {
      ctx.addIssue({
        code: "custom",
        path: ["aws", "hostedZone"],
        message: "is required with aws.https: ACM validates the certificate in that zone",
      });
    }
    if (d.aws.https && !d.dns) {
      ctx.addIssue({
        code: "custom",
        path: ["dns"],
        message: "is required with aws.https: the certificate is for dns.name",
      });
    }
    if (d.aws.https && d.topology === "single-instance") {
      ctx.addIssue({
        code: "custom",
        path: ["aws", "https"],
        message: "needs the load-balanced topology (the single instance serves plain HTTP); set it to false",
      });
    }
    const local = d.loadBalancer.local;
    if (local.httpsPort !== undefined && (local.workers ?? 1) > 1) {
      ctx.addIssue({
        code: "custom",
        path: ["loadBalancer", "local", "httpsPort"],
        message:
          "needs a single balancer process (TLS terminates in the runtime); remove workers or httpsPort",
      });
    }
    if (local.httpsPort !== undefined && !d.dns) {
      ctx.addIssue({
        code: "custom",
        path: ["loadBalancer", "local", "httpsPort"],
        message: "needs dns.name (the certificate's name); set dns or remove httpsPort",
      });
    }
    if (local.httpsPort !== undefined && local.httpsPort !== 0 && local.httpsPort === local.port) {
      ctx.addIssue({
        code: "custom",
        path: ["loadBalancer", "local", "httpsPort"],
        message: `must differ from loadBalancer.local.port (${local.port}): that one answers the 301`,
      });
    }
    if (d.topology === "ecs") {
      for (const env of ["dev", "prod"] as const) {
        for (const p of taskFitProblems(d.ecs.task, d.environments[env].web.instanceTypes)) {
          ctx.addIssue({
            code: "custom",
            path: ["environments", env, "web", "instanceTypes", p.index],
            message: p.message,
          });
        }
      }
    }
    if (zone && d.dns && !d.dns.name.endsWith(`.${zone.name}`)) {
      ctx.addIssue({
        code: "custom",
        path: ["dns", "name"],
        message: `must be a name inside aws.hostedZone.name and below its apex, such as app.${zone.name}`,
      });
    }
    for (const env of environmentNames) {
      const redis = d.environments[env].redis;
      if (redis.crossRegion !== "replica") continue;
      const path = ["environments", env, "redis"];
      if (!(d.environments[env].regions ?? d.regions).secondary) {
        ctx.addIssue({
          code: "custom",
          path: [...path, "crossRegion"],
          message: 'needs regions.secondary (there is no region to replicate to); set it to "none"',
        });
      }
      const refusal = globalDatastoreNodeTypeProblem(redis.nodeType);
      if (refusal) ctx.addIssue({ code: "custom", path: [...path, "nodeType"], message: refusal });
    }
    // The top-level regions are checked against the environments that use them; an environment's
    // own regions against that environment.
    const regionSets: {
      path: (string | number)[];
      regions: z.infer<typeof regions>;
      envs: EnvironmentName[];
    }[] = [
      {
        path: ["regions"],
        regions: d.regions,
        envs: environmentNames.filter((env) => !d.environments[env].regions),
      },
      ...environmentNames.flatMap((env) => {
        const own = d.environments[env].regions;
        return own ? [{ path: ["environments", env, "regions"], regions: own, envs: [env] }] : [];
      }),
    ];
    for (const set of regionSets) checkSecondaryRegion(d, set.regions, set.path, set.envs, ctx);
    if (d.dns && regionSets.some((set) => set.regions.secondary)) {
      for (const p of regionTimingProblems({ dns: d.dns, targetGroup: d.targetGroup }))
        ctx.addIssue({ code: "custom", path: p.path, message: p.message });
    }
    const accounts = environmentNames.map((env) => d.environments[env].aws?.account);
    if (accounts.some(Boolean)) {
      environmentNames.forEach((env, i) => {
        if (accounts[i]) return;
        ctx.addIssue({
          code: "custom",
          path: ["environments", env, "aws", "account"],
          message: `is required once another environment names its account: give every environment its account (aws: { account: "123456789012" }), or none`,
        });
      });
      const providerAccount = d.ci?.oidcProviderArn?.split(":")[4];
      if (providerAccount && !accounts.includes(providerAccount)) {
        ctx.addIssue({
          code: "custom",
          path: ["ci", "oidcProviderArn"],
          message: `is in account ${providerAccount}, which no environment names (${accounts.join(", ")}): use the provider of an environment's account, or remove it`,
        });
      }
    }
  });

export type StackDescription = z.input<typeof stackDescriptionSchema>;
export type ValidStackDescription = z.output<typeof stackDescriptionSchema>;

/** The description with one environment chosen: what renderers read. */
export type ResolvedStack = Omit<ValidStackDescription, "environments" | "redis" | "ecs" | "aws"> &
  Omit<EnvironmentSettings, "redis" | "ecs" | "regions" | "aws"> & {
    environment: EnvironmentName;
    /** The environment's own regions when it names them, else the top-level ones. */
    regions: ValidStackDescription["regions"];
    redis: ValidStackDescription["redis"] & EnvironmentSettings["redis"];
    ecs: ValidStackDescription["ecs"] & EnvironmentSettings["ecs"];
    /** The top-level aws settings, with the environment's account when it names one. */
    aws: ValidStackDescription["aws"] & { account?: string };
  };

export { type EnvironmentName, environmentNames, type Topology, topologies };
