import type { ResolvedStack } from "../stack/index.ts";
import { SENTINELS_PER_REGION } from "../stack/derived.ts";
import type { PricedTemplate } from "./cost/estimate.ts";

/**
 * The architecture as a Mermaid flowchart (the format GitHub renders), drawn from what is
 * synthesized: one box per region and stack, a node per resource that a reader of the seeds would
 * draw, subnets folded into one node per tier, and an edge wherever one resource refers to another
 * (directly or through a listener, an attachment or a cross-stack export). A resource type it has
 * no label for is drawn with its CloudFormation type, so a new topology shows without special cases.
 */

/** Types drawn with a friendly label. */
const labels: Record<string, string> = {
  "AWS::EC2::VPC": "VPC",
  "AWS::EC2::NatGateway": "NAT gateway",
  "AWS::EC2::InternetGateway": "internet gateway",
  "AWS::EC2::EIP": "Elastic IP",
  "AWS::EC2::Volume": "EBS volume",
  "AWS::ElasticLoadBalancingV2::LoadBalancer": "Application Load Balancer",
  "AWS::ElasticLoadBalancingV2::TargetGroup": "target group",
  "AWS::AutoScaling::AutoScalingGroup": "Auto Scaling group",
  "AWS::ElastiCache::ReplicationGroup": "ElastiCache Redis",
  "AWS::SecretsManager::Secret": "AUTH token (Secrets Manager)",
  "AWS::Route53::HealthCheck": "Route 53 health check",
  "AWS::Route53::RecordSet": "DNS record",
  "AWS::CloudWatch::Alarm": "CloudWatch alarm",
  "AWS::Lambda::Function": "Lambda",
  "AWS::SNS::Topic": "SNS topic",
  "AWS::S3::Bucket": "S3 bucket",
};

/** Plumbing: not drawn, but a reference through it still connects what it joins. */
const plumbing = new Set([
  "AWS::EC2::RouteTable",
  "AWS::EC2::SubnetRouteTableAssociation",
  "AWS::EC2::Route",
  "AWS::EC2::VPCGatewayAttachment",
  "AWS::EC2::SecurityGroup",
  "AWS::EC2::SecurityGroupIngress",
  "AWS::EC2::SecurityGroupEgress",
  "AWS::EC2::LaunchTemplate",
  "AWS::EC2::FlowLog",
  "AWS::EC2::VolumeAttachment",
  "AWS::IAM::Role",
  "AWS::IAM::Policy",
  "AWS::IAM::ManagedPolicy",
  "AWS::IAM::InstanceProfile",
  "AWS::CDK::Metadata",
  "AWS::ElastiCache::SubnetGroup",
  "AWS::S3::BucketPolicy",
  "AWS::SNS::TopicPolicy",
  "AWS::SNS::Subscription",
  "AWS::ElasticLoadBalancingV2::Listener",
  "AWS::ElasticLoadBalancingV2::ListenerRule",
  "AWS::AutoScaling::ScalingPolicy",
  "AWS::AutoScaling::ScheduledAction",
  "AWS::Lambda::Permission",
  "AWS::Lambda::EventInvokeConfig",
  "AWS::Logs::LogGroup",
  "AWS::CertificateManager::Certificate",
  "AWS::SSM::Parameter",
  "Custom::S3AutoDeleteObjects",
]);

type Props = Record<string, unknown>;
type Resources = Record<string, { Type: string; Properties?: Props }>;

/** Text Mermaid accepts inside a quoted label. */
const quote = (text: string) => `"${text.replace(/"/g, "#quot;")}"`;

/** Every logical id a value refers to: Ref, Fn::GetAtt, and imports of another stack's export. */
function references(value: unknown, found: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) for (const v of value) references(v, found);
  else if (value && typeof value === "object") {
    const o = value as Props;
    if (typeof o.Ref === "string") found.add(o.Ref);
    const getAtt = o["Fn::GetAtt"];
    if (Array.isArray(getAtt) && typeof getAtt[0] === "string") found.add(getAtt[0]);
    if (typeof o["Fn::ImportValue"] === "string") found.add(`import:${o["Fn::ImportValue"]}`);
    for (const v of Object.values(o)) references(v, found);
  }
  return found;
}

function subnetTier(p: Props): string {
  const tags = (p.Tags as { Key: string; Value: string }[] | undefined) ?? [];
  return tags.find((t) => t.Key === "aws-cdk:subnet-name")?.Value ?? "subnets";
}

export function awsDiagram(stack: ResolvedStack, templates: PricedTemplate[]): string {
  const lines = ["flowchart TB", `  clients(("clients on the internet"))`];
  const edges = new Set<string>();
  // node id of each resource (stack/logicalId), for edges across stacks.
  const nodeOf = new Map<string, string>();
  const resourcesOf = new Map<string, Resources>();
  // Drawn, but not linked: everything in the region is in its VPC.
  const containers = new Set<string>();
  let n = 0;
  const regions = [...new Set(templates.map((t) => t.region))];

  for (const { stack: name, template } of templates) resourcesOf.set(name, template.Resources ?? {});

  for (const [r, region] of regions.entries()) {
    const roles = [
      ...(region === stack.regions.primary.name ? ["primary region"] : []),
      ...(region === stack.regions.secondary?.name
        ? [`secondary region, ${stack.regions.secondary.standby.mode}`]
        : []),
      ...(templates.some((t) => t.region === region && t.stack.endsWith("-dns-failover"))
        ? ["Route 53 failover"]
        : []),
    ];
    const role = roles.join("; ");
    lines.push(`  subgraph region${r}[${quote(`${region} (${role})`)}]`);
    for (const { stack: name } of templates.filter((t) => t.region === region)) {
      const resources = resourcesOf.get(name) ?? {};
      const s = n++;
      lines.push(`    subgraph stack${s}[${quote(name)}]`);
      const tiers = new Map<string, string[]>();
      for (const [id, res] of Object.entries(resources)) {
        const p = res.Properties ?? {};
        if (res.Type === "AWS::EC2::Subnet") {
          const tier = subnetTier(p);
          const node = `s${s}_${tier.replace(/\W/g, "")}`;
          tiers.set(tier, [...(tiers.get(tier) ?? []), String(p.AvailabilityZone ?? "")]);
          nodeOf.set(`${name}/${id}`, node);
          continue;
        }
        if (plumbing.has(res.Type)) continue;
        const node = `n${n++}`;
        if (res.Type === "AWS::EC2::VPC") containers.add(node);
        nodeOf.set(`${name}/${id}`, node);
        lines.push(`      ${node}[${quote(describe(res.Type, p))}]`);
      }
      for (const [tier, azs] of tiers) {
        lines.push(`      s${s}_${tier.replace(/\W/g, "")}[${quote(`${tier} subnets: ${azs.join(", ")}`)}]`);
      }
      lines.push("    end");
    }
    lines.push("  end");
  }

  // Edges: a drawn resource to what it refers to; through plumbing, between what the plumbing joins.
  const resolve = (from: string, ref: string): string | undefined => {
    if (!ref.startsWith("import:")) return `${from}/${ref}`;
    const [producer, output = ""] = ref.slice("import:".length).split(":");
    const rest = output.replace(/^ExportsOutput(Ref|FnGetAtt)/, "");
    const ids = Object.keys(resourcesOf.get(producer as string) ?? {}).filter((id) => rest.startsWith(id));
    const longest = ids.sort((a, b) => b.length - a.length)[0];
    return longest ? `${producer}/${longest}` : undefined;
  };
  const drawnTargets = (name: string, value: unknown, seen: Set<string>): string[] => {
    const out: string[] = [];
    for (const ref of references(value)) {
      const key = resolve(name, ref);
      if (!key || seen.has(key)) continue;
      seen.add(key);
      const node = nodeOf.get(key);
      if (node && containers.has(node)) continue;
      if (node) out.push(node);
      else {
        const [producer = "", id = ""] = key.split("/");
        const res = resourcesOf.get(producer)?.[id];
        // One hop through plumbing (a listener joins its load balancer and target group).
        if (res && plumbing.has(res.Type)) out.push(...drawnTargets(producer, res.Properties, seen));
      }
    }
    return out;
  };
  for (const { stack: name } of templates) {
    for (const [id, res] of Object.entries(resourcesOf.get(name) ?? {})) {
      if (res.Type === "AWS::EC2::Subnet" || res.Type === "AWS::EC2::VPC") continue;
      const from = nodeOf.get(`${name}/${id}`);
      const targets = drawnTargets(name, res.Properties, new Set([`${name}/${id}`]));
      if (from) {
        for (const to of targets) if (to !== from && !/^s\d+_/.test(from)) edges.add(`  ${from} --- ${to}`);
      } else if (plumbing.has(res.Type)) {
        // A listener, attachment or rule: connect the load balancer side to the target side.
        const unique = [...new Set(targets)].filter((t) => !/^s\d+_/.test(t));
        for (let i = 1; i < unique.length; i++) edges.add(`  ${unique[0]} --- ${unique[i]}`);
      }
      if (
        res.Type === "AWS::ElasticLoadBalancingV2::LoadBalancer" &&
        res.Properties?.Scheme === "internet-facing"
      )
        edges.add(`  clients --> ${from}`);
      if (res.Type === "AWS::Route53::RecordSet" && from) edges.add(`  clients -->|resolve| ${from}`);
    }
  }
  return [...lines, ...[...edges].sort(), ""].join("\n");
}

function describe(type: string, p: Props): string {
  const label = labels[type] ?? type;
  switch (type) {
    case "AWS::AutoScaling::AutoScalingGroup": {
      const overrides = ((p.MixedInstancesPolicy as Props | undefined)?.LaunchTemplate as Props | undefined)
        ?.Overrides as Props[] | undefined;
      const types = overrides?.map((o) => String(o.InstanceType)).join(" / ");
      return `${label} ${String(p.AutoScalingGroupName ?? "")}: min ${String(p.MinSize)}, desired ${String(p.DesiredCapacity ?? "(Lambda)")}, max ${String(p.MaxSize)}${types ? `, ${types}` : ""}`;
    }
    case "AWS::ElastiCache::ReplicationGroup":
      return `${label}: ${String(p.NumCacheClusters ?? 1)} × ${String(p.CacheNodeType)}${p.MultiAZEnabled ? ", Multi-AZ" : ""}`;
    case "AWS::ElasticLoadBalancingV2::LoadBalancer":
      return `${label} (${String(p.Scheme ?? "internal")})`;
    case "AWS::ElasticLoadBalancingV2::TargetGroup":
      return `${label}: health check ${String(p.HealthCheckPath ?? "")}`;
    case "AWS::Route53::RecordSet":
      return `${label} ${String(p.Name ?? "").replace(/\.$/, "")}${p.Failover ? ` (${String(p.Failover)})` : ""}`;
    case "AWS::Route53::HealthCheck": {
      const c = (p.HealthCheckConfig ?? {}) as Props;
      return `${label} ${String(c.FullyQualifiedDomainName ?? "")}${String(c.ResourcePath ?? "")}`;
    }
    case "AWS::CloudWatch::Alarm":
      return `${label} ${String(p.AlarmName ?? "")}`;
    case "AWS::Lambda::Function":
      return `${label} ${String(p.FunctionName ?? p.Handler ?? "")}`;
    case "AWS::EC2::VPC":
      return `${label} ${String(p.CidrBlock ?? "")}`;
    default:
      return label;
  }
}

/** The local runtime of the description, as `stayup up` runs it. */
export function localDiagram(stack: ResolvedStack): string {
  const lines = ["flowchart TB", `  clients(("curl, browsers, drills"))`];
  const regions = [
    {
      role: "primary",
      name: stack.regions.primary.name,
      host: stack.loadBalancer.local.host,
      azs: stack.regions.primary.availabilityZones,
      count: stack.web.capacity.desired,
    },
    ...(stack.regions.secondary
      ? [
          {
            role: "secondary",
            name: stack.regions.secondary.name,
            host: stack.regions.secondary.localHost,
            azs: stack.regions.secondary.availabilityZones,
            count:
              stack.regions.secondary.standby.mode === "pilot-light"
                ? 0
                : stack.regions.secondary.standby.warmCapacity,
          },
        ]
      : []),
  ];
  if (stack.dns) {
    lines.push(
      `  dns[${quote(`DNS server udp://${stack.dns.local.host}:${stack.dns.local.port}: ${stack.dns.name}, TTL ${stack.dns.ttlSeconds} s`)}]`,
    );
    lines.push(
      `  failover[${quote(`failover controller: health check every ${stack.dns.healthCheck.local.intervalMs} ms, ${stack.dns.healthCheck.failureThreshold} failures`)}]`,
    );
    lines.push("  clients -->|resolve| dns", "  failover --> dns");
  }
  lines.push(`  control[${quote("control plane (loopback): status, events, faults")}]`);
  lines.push(
    // Each region its own group: a node per AZ (at least two) and its Sentinel(s), in no zone.
    `  redis[${quote(
      stack.redis.multiAz
        ? `Redis in each region: a node per AZ (${Math.max(2, stack.regions.primary.availabilityZones.length)}: a primary and replicas), ${SENTINELS_PER_REGION === 1 ? "a regional Sentinel" : `${SENTINELS_PER_REGION} Sentinels`}; port ${stack.redis.localPort}`
        : `Redis: one node, port ${stack.redis.localPort}`,
    )}]`,
  );
  for (const [r, region] of regions.entries()) {
    lines.push(`  subgraph region${r}[${quote(`${region.role} ${region.name} (${region.host})`)}]`);
    lines.push(`    lb${r}[${quote(`load balancer ${region.host}:${stack.loadBalancer.local.port}`)}]`);
    lines.push(
      `    tg${r}[${quote(`target group: ${stack.targetGroup.healthCheck.path} every ${stack.targetGroup.healthCheck.local.intervalMs} ms`)}]`,
    );
    lines.push(`    group${r}[${quote(`instance group: ${region.count} desired, replaces what dies`)}]`);
    for (const [a, az] of region.azs.entries()) {
      const here = Array.from({ length: region.count }, (_, i) => i).filter(
        (i) => i % region.azs.length === a,
      ).length;
      lines.push(`    subgraph r${r}az${a}[${quote(az)}]`);
      lines.push(`      r${r}i${a}[${quote(`${here} instance${here === 1 ? "" : "s"} (processes)`)}]`);
      lines.push("    end");
    }
    lines.push("  end");
    lines.push(`  clients --> lb${r}`, `  lb${r} --> tg${r}`, `  group${r} --- tg${r}`);
    for (const a of region.azs.keys()) lines.push(`  tg${r} --> r${r}i${a}`, `  r${r}i${a} --> redis`);
    if (stack.dns) lines.push(`  failover -.->|scales| group${r}`);
    lines.push(`  control -.- group${r}`);
  }
  return `${lines.join("\n")}\n`;
}
