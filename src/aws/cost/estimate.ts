import { readFileSync } from "node:fs";
import { assumptions, type Price, type PriceKey, priceTable } from "./prices.ts";

/** A synthesized CloudFormation template, as `stayup synth` writes it. */
export interface PricedTemplate {
  stack: string;
  region: string;
  template: { Resources?: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
}

export interface CostItem {
  stack: string;
  region: string;
  resource: string;
  type: string;
  what: string;
  usdPerMonth: number;
}

export interface Unpriced {
  stack: string;
  region: string;
  resource: string;
  type: string;
  reason: string;
}

export interface CostEstimate {
  /** USD per month, the sum of `items`; excludes `unpriced`. */
  total: number;
  currency: "USD";
  period: "month";
  complete: boolean;
  items: CostItem[];
  unpriced: Unpriced[];
  /** Resources that cost nothing by themselves, by type, with why. */
  free: { type: string; count: number; why: string }[];
  assumptions: typeof assumptions;
  prices: { region: string; key: string; price: Price }[];
}

/** Types that cost nothing by themselves (their cost, if any, is priced on the resource named). */
export const freeTypes: Record<string, string> = {
  "AWS::EC2::VPC": "no charge",
  "AWS::EC2::Subnet": "no charge",
  "AWS::EC2::RouteTable": "no charge",
  "AWS::EC2::SubnetRouteTableAssociation": "no charge",
  "AWS::EC2::Route": "no charge",
  "AWS::EC2::InternetGateway": "no charge (traffic out is not modeled)",
  "AWS::EC2::VPCGatewayAttachment": "no charge",
  "AWS::EC2::SecurityGroup": "no charge",
  "AWS::EC2::SecurityGroupIngress": "no charge",
  "AWS::EC2::SecurityGroupEgress": "no charge",
  "AWS::EC2::FlowLog": "priced as its log group's ingestion",
  "AWS::EC2::LaunchTemplate": "priced on the group that launches it",
  "AWS::EC2::VolumeAttachment": "no charge",
  "AWS::EC2::EIPAssociation": "priced on the Elastic IP",
  "AWS::IAM::Role": "no charge",
  "AWS::IAM::Policy": "no charge",
  "AWS::IAM::ManagedPolicy": "no charge",
  "AWS::IAM::InstanceProfile": "no charge",
  "AWS::CDK::Metadata": "no resource",
  "AWS::ElastiCache::SubnetGroup": "no charge",
  "AWS::S3::BucketPolicy": "no charge",
  "AWS::SNS::TopicPolicy": "no charge",
  "AWS::SNS::Subscription": "no charge (deliveries: a few per failover)",
  "AWS::SNS::Topic": "no charge without messages (a few per failover or scaling event)",
  "AWS::ElasticLoadBalancingV2::Listener": "priced on the load balancer",
  "AWS::ElasticLoadBalancingV2::ListenerRule": "priced on the load balancer",
  "AWS::ElasticLoadBalancingV2::TargetGroup": "priced on the load balancer",
  "AWS::AutoScaling::ScheduledAction": "no charge",
  "AWS::Lambda::Permission": "no charge",
  "AWS::Lambda::EventInvokeConfig": "no charge",
  "AWS::Lambda::Function":
    "invoked only on failover, failback or stack deletion: a few requests a month, far below $0.01",
  "AWS::ApplicationAutoScaling::ScalableTarget": "no charge",
  "AWS::CertificateManager::Certificate": "public ACM certificates are free",
  "AWS::SSM::Parameter": "standard parameters are free",
  "Custom::CrossRegionExportWriter":
    "CDK's cross-region references (the Global Datastore's id): runs on deploy only",
  "Custom::CrossRegionExportReader":
    "CDK's cross-region references (the Global Datastore's id): runs on deploy only",
  "Custom::S3AutoDeleteObjects": "runs only when the stack is deleted",
  "AWS::ECS::Service": "no charge (EC2 launch type)",
  "AWS::ECS::TaskDefinition": "no charge",
  "AWS::ECS::ClusterCapacityProviderAssociations": "no charge",
};

type Resources = NonNullable<PricedTemplate["template"]["Resources"]>;
type Props = Record<string, unknown>;

class MissingPrice extends Error {}

/** What the templates cannot say: a group's running instances where no desired capacity is set. */
export interface EstimateOptions {
  /** By Auto Scaling group name (the ecs topology's container instances: steadyContainerInstances). */
  instanceCounts?: Record<string, { count: number; why: string }>;
}

/** Alarms target tracking creates and owns (one to scale out, one to scale in), outside the template. */
const TARGET_TRACKING_ALARMS = 2;

/**
 * Prices every resource of the synthesized templates from the price table and the stated
 * assumptions. A resource type, region or size with no price is listed in `unpriced`, never 0.
 */
export function estimateCost(templates: PricedTemplate[], options: EstimateOptions = {}): CostEstimate {
  const items: CostItem[] = [];
  const unpriced: Unpriced[] = [];
  const free = new Map<string, number>();
  const used = new Map<string, { region: string; key: string; price: Price }>();
  const h = assumptions.hoursPerMonth;
  const all = templates.flatMap((t) => Object.values(t.template.Resources ?? {}));
  const countOf = (type: string) => all.filter((r) => r.Type === type).length;

  for (const { stack, region, template } of templates) {
    const resources: Resources = template.Resources ?? {};
    const price = (key: PriceKey): number => {
      const p = priceTable[region]?.[key];
      if (!p) {
        throw new MissingPrice(
          priceTable[region] ? `no price for ${key} in ${region}` : `no prices for region ${region}`,
        );
      }
      used.set(`${region} ${key}`, { region, key, price: p });
      return p.usd;
    };
    for (const [id, resource] of Object.entries(resources)) {
      const p = (resource.Properties ?? {}) as Props;
      const add = (what: string, usdPerMonth: number) =>
        items.push({ stack, region, resource: id, type: resource.Type, what, usdPerMonth });
      try {
        switch (resource.Type) {
          case "AWS::AutoScaling::AutoScalingGroup": {
            const given =
              typeof p.AutoScalingGroupName === "string"
                ? options.instanceCounts?.[p.AutoScalingGroupName]
                : undefined;
            const count = given ? given.count : Number(p.DesiredCapacity ?? p.MinSize ?? 0);
            const launch = launchTemplateOf(p, resources);
            const type = instanceTypeOf(p, launch);
            if (!type) throw new MissingPrice("its instance type is not in the template");
            add(
              `${count} × ${type} (${given ? `steady state: ${given.why}` : "desired capacity"}) × ${h} h`,
              count * price(`ec2:${type}`) * h,
            );
            const gib = volumeGiB(launch);
            if (gib > 0)
              add(`${count} × ${gib} GiB gp3 root volume`, count * gib * price("ebs:gp3-gb-month"));
            if ((launch?.Monitoring as Props | undefined)?.Enabled === true) {
              const metrics = assumptions.detailedMonitoringMetrics;
              add(
                `${count} × ${metrics} detailed-monitoring metrics`,
                count * metrics * price("cloudwatch:metric-month"),
              );
            }
            const publicIp = ((launch?.NetworkInterfaces as Props[] | undefined) ?? []).some(
              (n) => n.AssociatePublicIpAddress === true,
            );
            if (publicIp) add(`${count} × public IPv4 address × ${h} h`, count * price("ipv4:hour") * h);
            break;
          }
          case "AWS::EC2::NatGateway": {
            const gb = assumptions.natGbPerMonth;
            add(
              `NAT gateway × ${h} h + ${gb} GB processed (assumed)`,
              price("nat:hour") * h + gb * price("nat:gb"),
            );
            break;
          }
          case "AWS::EC2::EIP":
            add(`public IPv4 address (Elastic IP) × ${h} h`, price("ipv4:hour") * h);
            break;
          case "AWS::ElasticLoadBalancingV2::LoadBalancer": {
            if (p.Type !== undefined && p.Type !== "application")
              throw new MissingPrice(`load balancer type ${String(p.Type)} is not in the price table`);
            const lcu = assumptions.albLcu;
            add(`ALB × ${h} h + ${lcu} LCU (assumed)`, (price("alb:hour") + lcu * price("alb:lcu-hour")) * h);
            if (p.Scheme === "internet-facing") {
              const azs = Array.isArray(p.Subnets) ? p.Subnets.length : 0;
              add(`${azs} public IPv4 addresses (one per AZ) × ${h} h`, azs * price("ipv4:hour") * h);
            }
            break;
          }
          case "AWS::ElastiCache::ReplicationGroup": {
            const nodes = Number(p.NumCacheClusters ?? 1);
            const node = String(p.CacheNodeType);
            add(`${nodes} × ${node} × ${h} h`, nodes * price(`elasticache:${node}`) * h);
            break;
          }
          case "AWS::ElastiCache::GlobalReplicationGroup": {
            // The nodes are priced on each region's replication group; this is the link between them.
            const gb = assumptions.globalDatastoreGbPerMonth;
            add(
              `Global Datastore: ${gb} GB replicated to the other region (assumed)`,
              gb * price("transfer:inter-region-gb"),
            );
            break;
          }
          case "AWS::Route53::HealthCheck": {
            const c = (p.HealthCheckConfig ?? {}) as Props;
            const options = [
              ...(String(c.Type).startsWith("HTTPS") ? ["HTTPS"] : []),
              ...(c.RequestInterval === 10 ? ["10 s interval"] : []),
            ];
            add(
              `health check${options.length ? ` + ${options.join(", ")}` : ""}`,
              price("route53:health-check-month") +
                options.length * price("route53:health-check-option-month"),
            );
            break;
          }
          case "AWS::CloudWatch::Alarm":
            add("standard alarm", price("cloudwatch:alarm-month"));
            break;
          case "AWS::AutoScaling::ScalingPolicy":
          case "AWS::ApplicationAutoScaling::ScalingPolicy": {
            if (p.PolicyType !== "TargetTrackingScaling") {
              free.set(resource.Type, (free.get(resource.Type) ?? 0) + 1);
              break;
            }
            add(
              `${TARGET_TRACKING_ALARMS} alarms target tracking creates`,
              TARGET_TRACKING_ALARMS * price("cloudwatch:alarm-month"),
            );
            break;
          }
          case "AWS::ECS::CapacityProvider": {
            const managed = ((p.AutoScalingGroupProvider as Props | undefined)?.ManagedScaling ??
              {}) as Props;
            if (managed.Status !== "ENABLED") {
              free.set(resource.Type, (free.get(resource.Type) ?? 0) + 1);
              break;
            }
            add(
              `managed scaling: ${TARGET_TRACKING_ALARMS} alarms of the target tracking policy it puts on its group`,
              TARGET_TRACKING_ALARMS * price("cloudwatch:alarm-month"),
            );
            break;
          }
          case "AWS::ECS::Cluster": {
            const settings = (p.ClusterSettings as Props[] | undefined) ?? [];
            const insights = settings.find((s) => s.Name === "containerInsights")?.Value;
            if (insights !== "enabled" && insights !== "enhanced") {
              free.set(resource.Type, (free.get(resource.Type) ?? 0) + 1);
              break;
            }
            // Charged as custom metrics (cluster, service and task-family dimensions), plus the
            // performance log events they are made from.
            const ci = assumptions.containerInsights;
            const metrics =
              ci.clusterMetrics +
              countOf("AWS::ECS::Service") * ci.serviceMetrics +
              countOf("AWS::ECS::TaskDefinition") * ci.taskFamilyMetrics;
            add(
              `Container Insights: ${metrics} metrics (assumed) + ${ci.logGbPerMonth} GB performance logs (assumed)`,
              metrics * price("cloudwatch:metric-month") + ci.logGbPerMonth * price("logs:ingest-gb"),
            );
            break;
          }
          case "AWS::Route53::RecordSet": {
            // Alias queries to AWS resources (the load balancers' records) are free; a failover
            // pair answers one name, priced once (on the primary record).
            if (p.AliasTarget !== undefined || p.Failover === "SECONDARY") {
              free.set(resource.Type, (free.get(resource.Type) ?? 0) + 1);
              break;
            }
            const millions = assumptions.dnsQueriesMillionsPerMonth;
            add(`${millions} million DNS queries (assumed)`, millions * price("route53:query-million"));
            break;
          }
          case "AWS::Logs::LogGroup": {
            const gb = assumptions.logGbPerMonth;
            add(`${gb} GB ingested (assumed)`, gb * price("logs:ingest-gb"));
            break;
          }
          case "AWS::S3::Bucket": {
            const gb = assumptions.s3GbPerMonth;
            add(`${gb} GB stored (assumed)`, gb * price("s3:gb-month"));
            break;
          }
          case "AWS::ECR::Repository": {
            const gb = assumptions.ecrGbPerMonth;
            add(`${gb} GB of images stored (assumed)`, gb * price("ecr:gb-month"));
            break;
          }
          case "AWS::SecretsManager::Secret":
            add("secret", price("secretsmanager:secret-month"));
            break;
          case "AWS::EC2::Volume": {
            if (p.VolumeType !== undefined && p.VolumeType !== "gp3")
              throw new MissingPrice(`volume type ${String(p.VolumeType)} is not in the price table`);
            const gib = Number(p.Size ?? 0);
            add(`${gib} GiB gp3 volume`, gib * price("ebs:gp3-gb-month"));
            break;
          }
          default: {
            if (freeTypes[resource.Type] !== undefined) {
              free.set(resource.Type, (free.get(resource.Type) ?? 0) + 1);
              break;
            }
            unpriced.push({
              stack,
              region,
              resource: id,
              type: resource.Type,
              reason: "resource type not in the price table",
            });
          }
        }
      } catch (error) {
        if (!(error instanceof MissingPrice)) throw error;
        unpriced.push({ stack, region, resource: id, type: resource.Type, reason: error.message });
      }
    }
  }
  const total = round(items.reduce((sum, i) => sum + i.usdPerMonth, 0));
  return {
    total,
    currency: "USD",
    period: "month",
    complete: unpriced.length === 0,
    items: items.map((i) => ({ ...i, usdPerMonth: round(i.usdPerMonth) })),
    unpriced,
    free: [...free].map(([type, count]) => ({ type, count, why: freeTypes[type] as string })),
    assumptions,
    prices: [...used.values()],
  };
}

export const round = (usd: number) => Math.round(usd * 100) / 100;

function launchTemplateOf(group: Props, resources: Resources): Props | undefined {
  const spec =
    ((group.MixedInstancesPolicy as Props | undefined)?.LaunchTemplate as Props | undefined)
      ?.LaunchTemplateSpecification ?? group.LaunchTemplate;
  const ref = (spec as Props | undefined)?.LaunchTemplateId as { Ref?: string } | undefined;
  const target = ref?.Ref ? resources[ref.Ref] : undefined;
  return target?.Properties?.LaunchTemplateData as Props | undefined;
}

/** The group's preferred type: the first override, else the launch template's. */
function instanceTypeOf(group: Props, launch: Props | undefined): string | undefined {
  const overrides = ((group.MixedInstancesPolicy as Props | undefined)?.LaunchTemplate as Props | undefined)
    ?.Overrides as Props[] | undefined;
  return (overrides?.[0]?.InstanceType as string | undefined) ?? (launch?.InstanceType as string | undefined);
}

function volumeGiB(launch: Props | undefined): number {
  const mappings = (launch?.BlockDeviceMappings as Props[] | undefined) ?? [];
  return mappings.reduce((sum, m) => sum + Number((m.Ebs as Props | undefined)?.VolumeSize ?? 0), 0);
}

export function readTemplates(
  stacks: { name: string; region: string; templateFile: string }[],
): PricedTemplate[] {
  return stacks.map((s) => ({
    stack: s.name,
    region: s.region,
    template: JSON.parse(readFileSync(s.templateFile, "utf8")) as PricedTemplate["template"],
  }));
}
