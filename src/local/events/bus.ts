import { type ControllerErrorEvent, ControllerGuard } from "../controller-guard.ts";

/**
 * Every state change of the local runtime, in the vocabulary of the field. Controllers publish
 * these; the CLI, drills and any UI subscribe instead of reaching into the controllers.
 */
export type StackEvent =
  | { type: "stack.starting"; environment: string; region: string }
  | { type: "stack.ready"; listener: string; healthyTargets: number }
  | { type: "stack.stopping"; reason: string }
  | { type: "stack.stopped" }
  | { type: "redis.started"; port: number; pid: number; role?: "primary" | "replica"; az?: string }
  | { type: "redis.exited"; pid: number; code: number | null; signal: string | null; az?: string }
  | { type: "redis.failover"; fromPort: number; toPort: number; fromAz: string; toAz: string }
  | { type: "redis.replica-in-sync"; port: number; az: string }
  | { type: "redis.primary-chosen"; node: string; az: string; reason: string }
  /** What a Sentinel decided about the primary (+sdown, +odown, +try-failover, -failover-abort-*, +tilt...). */
  | { type: "redis.sentinel"; sentinel: string; event: string; detail: string }
  | { type: "redis.zone-impaired"; az: string; node: string; port: number; role: "primary" | "replica" }
  | { type: "redis.zone-restored"; az: string; node: string; port: number }
  /**
   * Sentinel's view when a dead primary was not replaced in time: its flags for the primary and each
   * replica (SENTINEL MASTER / REPLICAS), so a report can say why no replica was promoted.
   */
  | {
      type: "redis.sentinel-view";
      reason: string;
      master: Record<string, string>;
      replicas: Record<string, string>[];
    }
  /**
   * A Sentinel declared a live node (the primary) down (+sdown): what that Sentinel saw of it (SENTINEL
   * MASTER: `last-ping-sent`, `last-ok-ping-reply`... in ms) and the node's own words, its log's last
   * lines and LATENCY LATEST, so a report can tell a stalled node from a Sentinel that lost its link.
   */
  | {
      type: "redis.primary-seen-down";
      sentinel: string;
      port: number;
      az: string;
      sentinelSaw: Record<string, string>;
      nodeLog: string[];
      latency: string[];
    }
  /** Cross-region Redis (src/local/redis/cross-region.ts): which region's group takes writes. */
  | {
      type: "redis.cross-region-promoted";
      region: string;
      reason: string;
      /** The last sampled lag before the promotion: what a lost primary region may take with it. */
      replicationLagMs: number | null;
    }
  | { type: "redis.cross-region-following"; region: string; writer: string }
  | { type: "redis.cross-region-failback"; region: string; caughtUpToOffset: number }
  /** A controller's failure, and what retries it (src/local/controller-guard.ts). */
  | ControllerErrorEvent
  | { type: "load-balancer.listening"; url: string }
  /**
   * Client connections refused at a balancer process's cap (`loadBalancer.local.limits.
   * maxClientConnections`, this process's share with several): the first at once, then one event
   * per 10 s with the count of that window, however large the flood.
   */
  | {
      type: "load-balancer.connections-refused";
      listener: "http" | "https";
      refused: number;
      maxClientConnections: number;
    }
  | { type: "instance.launched"; instanceId: string; az: string; pid: number; port: number }
  | { type: "instance.launch-failed"; instanceId: string; az: string; reason: string }
  | { type: "instance.terminating"; instanceId: string; az: string; reason: string }
  | {
      type: "instance.terminated";
      instanceId: string;
      az: string;
      pid: number;
      code: number | null;
      signal: string | null;
      expected: boolean;
    }
  | { type: "instance.replaced"; instanceId: string; replacementId: string; az: string }
  /** A broken-looking instance the group keeps on purpose (overload, or a replacement under way). */
  | { type: "instance.replacement-held"; instanceId: string; az: string; reason: string }
  | { type: "group.capacity-changed"; desired: number; min: number; max: number; reason: string }
  /** The local ECS topology (src/local/ecs/): container instances, tasks, the capacity provider. */
  | {
      type: "container-instance.registered";
      containerInstanceId: string;
      az: string;
      cpuUnits: number;
      memoryMiB: number;
    }
  | { type: "container-instance.deregistered"; containerInstanceId: string; az: string; expected: boolean }
  | { type: "container-instance.lost"; containerInstanceId: string; az: string; taskIds: string[] }
  | {
      type: "task.placed";
      taskId: string;
      containerInstanceId: string;
      az: string;
      placement: string;
      /** The task this one replaces (started first; that one stops once this one is healthy). */
      replaces?: string;
    }
  | { type: "task.replacement-held"; taskId: string; az: string; reason: string }
  /** Service auto scaling set the service's desired task count. */
  | { type: "service.desired-count-changed"; desired: number; min: number; max: number; reason: string }
  | { type: "task.unplaced"; reason: string }
  | {
      type: "task.running";
      taskId: string;
      containerInstanceId: string;
      az: string;
      pid: number;
      port: number;
    }
  | {
      type: "task.stopped";
      taskId: string;
      containerInstanceId: string;
      az: string;
      pid: number;
      reason: string;
      expected: boolean;
    }
  | { type: "capacity-provider.scaling"; desiredInstances: number; reason: string }
  | { type: "target.registered"; instanceId: string; az: string; port: number }
  | { type: "target.healthy"; instanceId: string; az: string }
  | { type: "target.unhealthy"; instanceId: string; az: string; reason: string }
  /** Out of rotation, its requests in flight finishing (the deregistration delay at most). */
  | { type: "target.draining"; instanceId: string; az: string; deregistrationDelayMs: number }
  | { type: "target.deregistered"; instanceId: string; az: string }
  /** Every target's checks are timing out: the group is slow (overload), not one broken target. */
  | { type: "target.slowdown"; slow: boolean; reason: string }
  | {
      type: "target.ejected";
      instanceId: string;
      az: string;
      reason: string;
      forMs: number;
      ejections: number;
    }
  | { type: "target.returned"; instanceId: string; az: string }
  | { type: "fault.injected"; fault: "page" | "redis"; kind: string; instanceIds: string[]; detail: string }
  /** A fault in force restored by the stack: `stayup faults clear`, or its drill's lease lapsed. */
  | { type: "fault.cleared"; fault: string; description: string; reason: string }
  | { type: "dns.listening"; server: string; name: string }
  | { type: "dns.health-changed"; healthy: boolean; region: string; answer: string }
  | { type: "alarm.state-changed"; alarm: string; state: "ALARM" | "OK" }
  | { type: "failover.action"; action: "failover" | "failback"; region: string; desired: number }
  | { type: "notification.sent"; subject: string; message: string; webhooks: number; delivered: number }
  | { type: "address.associated"; address: string; instanceId: string; previousInstanceId?: string }
  | { type: "address.disassociated"; address: string; instanceId: string; reason: string }
  | { type: "roll.started"; fromVersion: string; toVersion: string; instances: number }
  | { type: "roll.completed"; version: string; instancesReplaced: number; durationSeconds: number }
  | { type: "roll.rolled-back"; fromVersion: string; toVersion: string; reason: string }
  | { type: "volume.attached"; volumeId: string; instanceId: string }
  | { type: "volume.detached"; volumeId: string; instanceId: string; reason: string }
  /**
   * What a client of the stack saw, counted where it happens (a drill's traffic, its CPU load):
   * the connections refused before any balancer included, which no balancer can count. Published
   * by the control plane for the client (`POST /client-traffic`), a few seconds at a time.
   */
  | ClientTrafficEvent;

/** One second of a client's requests, counted by the client when each outcome was known. */
export interface ClientTrafficSecond {
  /** Start of the second, ms since epoch (the client's clock, which is this machine's). */
  secondStartMs: number;
  /** 2xx answers. */
  ok: number;
  /** Every request that did not get a 2xx: an error status, refused, reset, timed out. */
  failed: number;
  /** Of `failed`: connections refused (nothing listening: a region down, say). */
  refused: number;
  /** Of `failed`: no answer within the client's timeout. */
  timedOut: number;
}

/** The most seconds one client-traffic report may carry (the control plane refuses more). */
export const CLIENT_TRAFFIC_MAX_SECONDS_PER_REPORT = 600;

export interface ClientTrafficEvent {
  type: "client.traffic";
  /** Who sent the requests, in words ("drill region-outage"). */
  client: string;
  /** One run of that client: its seconds add up under this id. */
  clientId: string;
  seconds: ClientTrafficSecond[];
  /** The client stopped: nothing more comes under this id. */
  final: boolean;
}

export type StackEventType = StackEvent["type"];
/** An event as published: when, in which order, and (for per-region controllers) where. */
export type TimedStackEvent = StackEvent & { time: string; seq: number; region?: string };

/** What a controller needs of the bus: publish its own events, read the others'. */
export interface EventPublisher {
  publish(event: StackEvent): TimedStackEvent;
  subscribe(listener: (event: TimedStackEvent) => void): () => void;
}

/**
 * Subscribers isolated from each other and from whoever delivers: one that throws does not stop
 * delivery to the others nor throw into the caller; its failure is reported through `guard` (a
 * `controller.error` event). The runtime's bus and a load-balancer worker's view of it share this.
 */
export class IsolatedSubscribers {
  private listeners: ((event: TimedStackEvent) => void)[] = [];
  /** Set while a subscriber's failure is being reported: a failure in that report is not reported again. */
  private reporting = false;

  constructor(private readonly guard: ControllerGuard) {}

  /** Calls `listener` for every delivered event; returns the unsubscribe function. */
  add(listener: (event: TimedStackEvent) => void): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  deliver(event: TimedStackEvent): void {
    // A snapshot: subscribing or unsubscribing during delivery affects the next event, not this one.
    let failures: unknown[] | undefined;
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        (failures ??= []).push(error);
      }
    }
    // Reported once every subscriber has the event: the report must not overtake it.
    for (const error of failures ?? []) this.failed(event, error);
  }

  private failed(event: TimedStackEvent, error: unknown): void {
    if (this.reporting) return;
    this.reporting = true;
    try {
      this.guard.report(
        new Error(
          `a subscriber failed on ${event.type}: ${error instanceof Error ? error.message : String(error)}`,
        ),
        "the other subscribers got the event; the failing one gets the next",
      );
    } finally {
      this.reporting = false;
    }
  }
}

/**
 * The runtime's bus. Subscribers are isolated (IsolatedSubscribers): one that throws does not stop
 * delivery to the others nor throw into the publisher; its failure is a `controller.error` event.
 */
export class EventBus implements EventPublisher {
  private readonly history: TimedStackEvent[] = [];
  private seq = 0;
  private readonly subscribers = new IsolatedSubscribers(
    new ControllerGuard({ controller: "event-bus", events: this }),
  );

  constructor(private readonly historyLimit = 1000) {}

  publish(event: StackEvent, region?: string): TimedStackEvent {
    const timed = {
      ...event,
      time: new Date().toISOString(),
      seq: ++this.seq,
      ...(region ? { region } : {}),
    } as TimedStackEvent;
    this.history.push(timed);
    if (this.history.length > this.historyLimit) this.history.shift();
    this.subscribers.deliver(timed);
    return timed;
  }

  /** Calls `listener` for every new event; returns the unsubscribe function. */
  subscribe(listener: (event: TimedStackEvent) => void): () => void {
    return this.subscribers.add(listener);
  }

  /**
   * The bus as one region's controllers see it: what they publish carries `region`, and they hear
   * only that region's events (the primary's group must not act on the secondary's targets).
   */
  scoped(region: string): EventPublisher {
    return {
      publish: (event) => this.publish(event, region),
      subscribe: (listener) =>
        this.subscribe((event) => {
          if (event.region === region) listener(event);
        }),
    };
  }

  recent(): readonly TimedStackEvent[] {
    return this.history;
  }
}

/**
 * An EventPublisher in a process the bus is not in (a load-balancer worker): what it publishes is
 * forwarded to the runtime's bus, the runtime's events arrive through `deliver`, and its subscribers
 * are isolated as the bus's are (a subscriber's failure is published, so it reaches the runtime).
 */
export class RemoteEvents implements EventPublisher {
  private seq = 0;
  private readonly subscribers: IsolatedSubscribers;

  constructor(
    private readonly forward: (event: StackEvent) => void,
    controller: string,
  ) {
    this.subscribers = new IsolatedSubscribers(new ControllerGuard({ controller, events: this }));
  }

  publish(event: StackEvent): TimedStackEvent {
    this.forward(event);
    return { ...event, time: new Date().toISOString(), seq: ++this.seq } as TimedStackEvent;
  }

  subscribe(listener: (event: TimedStackEvent) => void): () => void {
    return this.subscribers.add(listener);
  }

  /** An event of the runtime's bus, to this process's subscribers. */
  deliver(event: TimedStackEvent): void {
    this.subscribers.deliver(event);
  }
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
const listOr = (ids: readonly string[], none: string) => (ids.length ? ids.join(", ") : none);

/**
 * An event's detail in words, without its time, type and region. Exhaustive: a new event type
 * without a text here does not compile.
 */
export function describeEvent(e: StackEvent): string {
  switch (e.type) {
    case "stack.starting":
      return `environment ${e.environment}, region ${e.region}`;
    case "stack.ready":
      return `${e.listener} (${e.healthyTargets} healthy targets)`;
    case "stack.stopping":
      return e.reason;
    case "stack.stopped":
      return "";
    case "redis.started":
      return `port ${e.port}, pid ${e.pid}${e.role ? `, ${e.role}` : ""}${e.az ? ` in ${e.az}` : ""}`;
    case "redis.exited":
      return `pid ${e.pid}${e.az ? ` in ${e.az}` : ""} (${e.signal ?? `code ${e.code}`})`;
    case "redis.replica-in-sync":
      return `replica in ${e.az} (port ${e.port}) holds every write: redundancy restored`;
    case "controller.error":
      return `${e.controller}: ${e.error} (${e.retry}${e.repeated ? `; ${e.repeated} more like it held back` : ""})`;
    case "redis.primary-chosen":
      return `${e.node} in ${e.az} starts as primary: ${e.reason}`;
    case "redis.zone-impaired":
      return `${e.node} (port ${e.port}, ${e.role}) out of reach with ${e.az}${e.role === "primary" ? ": Sentinel fails it over" : ""}`;
    case "redis.zone-restored":
      return `${e.node} (port ${e.port}) back with ${e.az}`;
    case "redis.sentinel":
      return `${e.sentinel}: ${e.event} ${e.detail}`;
    case "redis.sentinel-view":
      return `${e.reason}; Sentinel sees the primary ${e.master.flags ?? "?"}${e.replicas.map((r) => `, replica ${r.port ?? "?"} ${r.flags ?? "?"} (link ${r["master-link-status"] ?? "?"}, priority ${r["slave-priority"] ?? r["replica-priority"] ?? "?"})`).join("")}`;
    case "redis.primary-seen-down":
      return `${e.sentinel} saw the primary in ${e.az} (port ${e.port}) down while it ran: last ping sent ${e.sentinelSaw["last-ping-sent"] ?? "?"} ms ago, last good reply ${e.sentinelSaw["last-ok-ping-reply"] ?? "?"} ms ago; the node's latency spikes: ${e.latency.join("; ") || "none"}`;
    case "redis.failover":
      return `primary ${e.fromAz} (port ${e.fromPort}) → ${e.toAz} (port ${e.toPort})`;
    case "redis.cross-region-promoted":
      return `${e.region}'s Redis takes writes (${e.reason}; replication lag before it ${e.replicationLagMs ?? "unknown"} ms)`;
    case "redis.cross-region-following":
      return `${e.region}'s Redis follows ${e.writer}'s and catches up before it takes writes again`;
    case "redis.cross-region-failback":
      return `${e.region}'s Redis caught up (offset ${e.caughtUpToOffset}) and takes writes again`;
    case "load-balancer.listening":
      return e.url;
    case "load-balancer.connections-refused":
      return `${plural(e.refused, "client connection")} refused: the ${e.listener} listener holds its cap of ${e.maxClientConnections} (loadBalancer.local.limits.maxClientConnections)`;
    case "instance.launched":
      return `${e.instanceId} in ${e.az}, pid ${e.pid}, port ${e.port}`;
    case "instance.launch-failed":
      return `${e.instanceId} in ${e.az}: ${e.reason}`;
    case "instance.terminating":
      return `${e.instanceId} in ${e.az}: ${e.reason}`;
    case "instance.terminated":
      return `${e.instanceId} in ${e.az}, pid ${e.pid} (${e.signal ?? `exit code ${e.code}`})${e.expected ? "" : ", unexpected"}`;
    case "instance.replaced":
      return `${e.instanceId} → ${e.replacementId} in ${e.az}`;
    case "instance.replacement-held":
      return `${e.instanceId} in ${e.az}: ${e.reason}`;
    case "group.capacity-changed":
    case "service.desired-count-changed":
      return `desired ${e.desired} (min ${e.min}, max ${e.max}): ${e.reason}`;
    case "task.replacement-held":
      return `${e.taskId} in ${e.az}: ${e.reason}`;
    case "container-instance.registered":
      return `${e.containerInstanceId} in ${e.az}: ${e.cpuUnits} CPU units, ${e.memoryMiB} MiB`;
    case "container-instance.deregistered":
      return `${e.containerInstanceId} in ${e.az}${e.expected ? "" : ", unexpected"}`;
    case "container-instance.lost":
      return `${e.containerInstanceId} in ${e.az} with ${plural(e.taskIds.length, "task")}${e.taskIds.length ? `: ${e.taskIds.join(", ")}` : ""}`;
    case "task.placed":
      return `${e.taskId} on ${e.containerInstanceId} in ${e.az}${e.placement ? ` (placement ${e.placement})` : ""}`;
    case "task.unplaced":
      return e.reason;
    case "task.running":
      return `${e.taskId} on ${e.containerInstanceId} in ${e.az}, pid ${e.pid}, port ${e.port}`;
    case "task.stopped":
      return `${e.taskId} on ${e.containerInstanceId} in ${e.az}, pid ${e.pid}: ${e.reason}${e.expected ? "" : ", unexpected"}`;
    case "capacity-provider.scaling":
      return `desired ${plural(e.desiredInstances, "container instance")}: ${e.reason}`;
    case "target.registered":
      return `${e.instanceId} in ${e.az}, port ${e.port}`;
    case "target.healthy":
      return `${e.instanceId} in ${e.az}: in rotation`;
    case "target.unhealthy":
      return `${e.instanceId} in ${e.az}: ${e.reason}`;
    case "target.draining":
      return `${e.instanceId} in ${e.az}: out of rotation, draining for ${e.deregistrationDelayMs} ms at most`;
    case "target.deregistered":
      return `${e.instanceId} in ${e.az}`;
    case "target.slowdown":
      return e.reason;
    case "target.ejected":
      return `${e.instanceId} in ${e.az}: ${e.reason}; ejected for ${e.forMs} ms (ejection ${e.ejections} of this target)`;
    case "target.returned":
      return `${e.instanceId} in ${e.az}: ejection over, back in rotation`;
    case "fault.injected": {
      const on = listOr(e.instanceIds, "no instance");
      if (e.kind === "none") return `${e.fault} fault cleared on ${on}`;
      return `${e.fault} ${e.kind} on ${on}${e.detail && e.detail !== e.kind ? `: ${e.detail}` : ""}`;
    }
    case "fault.cleared":
      return `${e.description}: cleared (${e.reason})`;
    case "dns.listening":
      return `${e.name} on udp://${e.server}`;
    case "dns.health-changed":
      return `${e.region} ${e.healthy ? "healthy" : "UNHEALTHY"}: answering ${e.answer}`;
    case "alarm.state-changed":
      return `${e.alarm} → ${e.state}`;
    case "failover.action":
      return `${e.action}: ${e.region} desired capacity ${e.desired}`;
    case "notification.sent":
      return `"${e.subject}" (log${e.webhooks ? `, ${e.delivered}/${e.webhooks} webhooks` : ""})`;
    case "address.associated":
      return `${e.address} → ${e.instanceId}${e.previousInstanceId ? ` (was ${e.previousInstanceId})` : ""}`;
    case "address.disassociated":
      return `${e.address} from ${e.instanceId}: ${e.reason}`;
    case "roll.started":
      return `${e.fromVersion} → ${e.toVersion}, ${plural(e.instances, "instance")}`;
    case "roll.completed":
      return `${e.version}: ${plural(e.instancesReplaced, "instance")} replaced in ${e.durationSeconds.toFixed(1)} s`;
    case "roll.rolled-back":
      return `${e.fromVersion} rolled back to ${e.toVersion}${e.reason ? `: ${e.reason}` : ""}`;
    case "volume.attached":
      return `${e.volumeId} to ${e.instanceId}`;
    case "volume.detached":
      return `${e.volumeId} from ${e.instanceId}: ${e.reason}`;
    case "client.traffic": {
      const sum = (k: "ok" | "failed" | "refused" | "timedOut") => e.seconds.reduce((n, s) => n + s[k], 0);
      return `${e.client} (run ${e.clientId}): ${sum("ok")} ok, ${sum("failed")} failed (${sum("refused")} refused, ${sum("timedOut")} timed out) in ${plural(e.seconds.length, "second")}${e.final ? "; its last" : ""}`;
    }
    default:
      return unknownEvent(e);
  }
}

/**
 * The compiler names a type that has no case here (`e` is then not `never`). Reached at run time
 * only by an event from another version of stayup (a saved drill report): its fields as key=value.
 */
function unknownEvent(e: never): string {
  const { type: _type, time: _time, seq: _seq, region: _region, ...fields } = e as Record<string, unknown>;
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

/** One readable line per event, for `stayup up` and the drills. */
export function formatEvent(e: TimedStackEvent): string {
  const time = e.time.slice(11, 23);
  return `${time}  ${e.type.padEnd(24)} ${e.region ? `[${e.region}] ` : ""}${describeEvent(e)}`;
}
