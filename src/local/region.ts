import path from "node:path";
import { derive } from "../stack/derived.ts";
import type { ResolvedStack } from "../stack/schema.ts";
import type { EventBus } from "./events/bus.ts";
import { type GroupCapacity, InstanceGroupController } from "./instance-group/controller.ts";
import { LoadBalancer, type Listener } from "./load-balancer/balancer.ts";
import { LoadBalancerWorkers } from "./load-balancer/workers.ts";
import { HttpsListener } from "./load-balancer/https.ts";
import { ScalingController } from "./scaling/controller.ts";
import { TargetGroupController } from "./target-group/controller.ts";

export interface LocalRegionOptions {
  stack: ResolvedStack;
  name: string;
  role: "primary" | "secondary";
  availabilityZones: string[];
  listener: { host: string; port: number };
  capacity: GroupCapacity;
  serviceEntry: string;
  instanceEnvironment: () => Record<string, string>;
  stateDir: string;
  events: EventBus;
  /**
   * The region's own Redis in an outage: out of reach while the region is down, and back (following
   * the region that took writes meanwhile, with a cross-region replica) before its instances start.
   */
  redis?: { lost(): void; back(): Promise<void> };
}

/** One region: its target group, load balancer, instance group and scaling policy. */
export class LocalRegion {
  readonly targetGroup: TargetGroupController;
  readonly loadBalancer: Listener;
  readonly group: InstanceGroupController;
  readonly scaling: ScalingController;
  /** With loadBalancer.local.httpsPort (primary region): the HTTPS listener over the balancer. */
  https?: HttpsListener;
  private readonly httpsPort?: number;
  /** Down on purpose (a region outage drill): nothing runs, nothing is replaced. */
  down = false;

  constructor(readonly options: LocalRegionOptions) {
    const { stack } = options;
    const events = options.events.scoped(options.name);
    const hc = stack.targetGroup.healthCheck;
    const derived = derive(stack);
    this.targetGroup = new TargetGroupController(
      {
        path: hc.path,
        intervalMs: hc.local.intervalMs,
        timeoutMs: hc.local.timeoutMs,
        healthyThreshold: hc.healthyThreshold,
        unhealthyThreshold: hc.unhealthyThreshold,
      },
      events,
      derived.deregistrationDelay.ms,
    );
    this.httpsPort = options.role === "primary" ? stack.loadBalancer.local.httpsPort : undefined;
    // Shares the listener object: a port chosen at start reaches the load balancer too.
    if (this.httpsPort !== undefined) {
      Object.assign(options.listener, { redirectToHttpsPort: () => this.https?.port ?? 0 });
    }
    // What one client may hold of the balancer (and of the HTTPS listener in front of it).
    Object.assign(options.listener, { limits: stack.loadBalancer.local.limits });
    const policy = {
      retries: stack.loadBalancer.retries,
      outlierDetection: stack.loadBalancer.outlierDetection,
    };
    const workers = stack.loadBalancer.local.workers ?? 1;
    this.loadBalancer =
      workers > 1
        ? new LoadBalancerWorkers(this.targetGroup, events, options.listener, policy, workers)
        : new LoadBalancer(this.targetGroup, events, options.listener, policy);
    // Draining waits for the requests in flight to the target (the workers report theirs).
    this.targetGroup.drainWith(this.loadBalancer);
    this.group = new InstanceGroupController(
      {
        name: `${stack.name}-${stack.environment}-web-${options.name}`,
        region: options.name,
        availabilityZones: options.availabilityZones,
        capacity: options.capacity,
        serviceEntry: options.serviceEntry,
        service: stack.webService.start,
        instanceEnvironment: options.instanceEnvironment,
        logDir: path.join(options.stateDir, "logs", options.name),
        policy: {
          healthCheckGracePeriodMs: derived.healthCheckGracePeriod.localMs,
          replacementDelayMs: derived.replacementDelayMs,
        },
      },
      this.targetGroup,
      events,
    );
    this.scaling = new ScalingController(
      this.group,
      {
        targetCpuPercent: stack.scaling.targetCpuPercent,
        ...stack.scaling.local,
        warmupMs: derived.instanceWarmup.localMs,
      },
      events,
    );
  }

  get name(): string {
    return this.options.name;
  }

  async start(): Promise<void> {
    await this.startHttps();
    await this.loadBalancer.listen();
    this.group.start();
    this.scaling.start();
  }

  /** The HTTPS listener with a certificate for dns.name from the state folder's local authority. */
  private async startHttps(): Promise<void> {
    const { stack, listener, stateDir } = this.options;
    if (this.httpsPort === undefined || !stack.dns) return;
    // The schema refuses httpsPort with balancer workers: TLS terminates in this process.
    if (!(this.loadBalancer instanceof LoadBalancer)) return;
    const balancer = this.loadBalancer;
    // Loaded only here: its X.509 library is more than a megabyte of code a stack without HTTPS
    // would hold for nothing.
    const { ensureLocalAuthority, issueServerCertificate } = await import("./tls/authority.ts");
    // Renewed here when due: every `up` starts with an authority valid for the renewal margin.
    const authority = await ensureLocalAuthority(stateDir, { dnsNames: [stack.dns.name] });
    // The authority may sign for loopback only (its name constraints): another address is left out.
    const loopback = /^127\./.test(listener.host) ? [listener.host] : [];
    const certificate = await issueServerCertificate(authority, [stack.dns.name, "localhost", ...loopback]);
    this.https = new HttpsListener(balancer.handleRequest, {
      host: listener.host,
      port: this.httpsPort,
      limits: stack.loadBalancer.local.limits,
      events: this.options.events.scoped(this.name),
      ...certificate,
    });
    const url = await this.https.listen();
    this.options.events.scoped(this.name).publish({ type: "load-balancer.listening", url });
  }

  /** A whole-region outage: the load balancer stops answering, every instance dies, Redis is out of reach. */
  async fail(): Promise<void> {
    this.down = true;
    // The whole region at once: its Redis is out of reach as its instances die.
    this.options.redis?.lost();
    this.scaling.stop();
    await this.loadBalancer.close();
    await this.https?.close();
    await this.group.kill();
  }

  /** The region comes back: listener up, the group relaunches its desired capacity. */
  async restore(): Promise<void> {
    await this.options.redis?.back();
    this.down = false;
    await this.https?.listen();
    await this.loadBalancer.listen();
    this.group.resume();
    this.scaling.start();
  }

  async stop(): Promise<void> {
    this.scaling.stop();
    await this.group.stop();
    this.targetGroup.stop();
    await this.loadBalancer.close().catch(() => undefined);
    await this.https?.close().catch(() => undefined);
  }
}
