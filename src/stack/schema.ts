import { z } from "zod";

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

const dnsFailover = z
  .object({
    /** The name clients resolve; answered by Route 53 on AWS and by the local DNS server locally. */
    name: z.string().regex(/^([a-z0-9-]+\.)+[a-z]{2,}$/, "must be a DNS name such as app.example.com"),
    ttlSeconds: z.number().int().min(0, "must be 0 to 86400").max(86_400, "must be 0 to 86400"),
    healthCheck: z
      .object({
        /** Consecutive failed checks before the primary counts as down (Route 53 allows 1-10). */
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
        /** Protects instances from scale-in (seed 004: on in prod). */
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
      })
      .strict(),
    /** Deletion protection on the load balancer, Redis and DNS zone (seed 004: on in prod). */
    deletionProtection: z.boolean(),
  })
  .strict();

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
    /**
     * `load-balanced`: tutorial 07 (ALB + Auto Scaling group + ElastiCache).
     * `single-instance`: seed 003 (a group of 1 with a stable Elastic IP and a data volume, no ALB).
     */
    topology: z.enum(["load-balanced", "single-instance"], {
      message: 'must be "load-balanced" or "single-instance"',
    }),
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

export const environmentNames = ["dev", "prod"] as const;
export type EnvironmentName = (typeof environmentNames)[number];

export const stackDescriptionSchema = z
  .object({
    /** Lower-case name used as a prefix for every named resource, with the environment appended. */
    name: z
      .string()
      .regex(
        /^[a-z][a-z0-9-]{1,20}$/,
        "must be 2-21 lower-case letters, digits or dashes, starting with a letter",
      ),
    regions: z.object({ primary: region, secondary: secondaryRegion.optional() }).strict(),
    /** DNS failover between the regions (Route 53 failover records locally mirrored). */
    dns: dnsFailover.optional(),
    scaling,
    notifications,
    webService: z
      .object({
        /** Port every instance listens on behind the load balancer (on AWS; locally each takes a free port). */
        port: port.refine((p) => p > 0, "must be a fixed port for the instances"),
      })
      .strict(),
    targetGroup: z
      .object({
        healthCheck,
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
          .object({ host: z.ipv4({ message: "must be an IPv4 address such as 127.0.0.1" }), port })
          .strict(),
      })
      .strict(),
    redis: z
      .object({
        /** Port of the local redis-server the runtime starts (0 picks a free one). */
        localPort: port,
      })
      .strict(),
    aws,
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
    if (d.aws.https && d.aws.topology === "single-instance") {
      ctx.addIssue({
        code: "custom",
        path: ["aws", "https"],
        message: "needs the load-balanced topology (the single instance serves plain HTTP); set it to false",
      });
    }
    if (zone && d.dns && !d.dns.name.endsWith(`.${zone.name}`)) {
      ctx.addIssue({
        code: "custom",
        path: ["dns", "name"],
        message: `must be a name inside aws.hostedZone.name and below its apex, such as app.${zone.name}`,
      });
    }
    const secondary = d.regions.secondary;
    if (!secondary) return;
    if (secondary.name === d.regions.primary.name) {
      ctx.addIssue({
        code: "custom",
        path: ["regions", "secondary", "name"],
        message: "must differ from the primary region",
      });
    }
    secondary.availabilityZones.forEach((az, i) => {
      if (!az.startsWith(secondary.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["regions", "secondary", "availabilityZones", i],
          message: `"${az}" is not in region ${secondary.name}`,
        });
      }
    });
    if (!d.dns) {
      ctx.addIssue({
        code: "custom",
        path: ["dns"],
        message: "is required with a secondary region (it routes the failover)",
      });
    }
    if (secondary.localHost === d.loadBalancer.local.host) {
      ctx.addIssue({
        code: "custom",
        path: ["regions", "secondary", "localHost"],
        message: `must differ from loadBalancer.local.host (${d.loadBalancer.local.host}): DNS answers an address, not a port`,
      });
    }
    for (const env of ["dev", "prod"] as const) {
      const max = d.environments[env].web.capacity.max;
      if (secondary.standby.warmCapacity > max) {
        ctx.addIssue({
          code: "custom",
          path: ["regions", "secondary", "standby", "warmCapacity"],
          message: `must be ≤ environments.${env}.web.capacity.max (${max})`,
        });
      }
    }
  });

export type StackDescription = z.input<typeof stackDescriptionSchema>;
export type ValidStackDescription = z.output<typeof stackDescriptionSchema>;

/** The description with one environment chosen: what renderers read. */
export type ResolvedStack = Omit<ValidStackDescription, "environments" | "redis"> &
  Omit<EnvironmentSettings, "redis"> & {
    environment: EnvironmentName;
    redis: ValidStackDescription["redis"] & EnvironmentSettings["redis"];
  };
