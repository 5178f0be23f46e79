/**
 * What one client may hold of the balancer (`loadBalancer.local.limits`), as each balancer process
 * applies it, and the shared budget for request bodies held at once.
 */
import type { Server } from "node:net";
import { LOAD_BALANCER_LIMIT_DEFAULTS } from "../../stack/load-balancer-limits.ts";
import type { LoadBalancerLimits } from "../../stack/schema.ts";
import type { EventPublisher } from "../events/bus.ts";

export type ClientLimits = LoadBalancerLimits;

/** The description's limits, any left out at their defaults (tests and tools pass a few). */
export function clientLimits(limits: Partial<ClientLimits> = {}): ClientLimits {
  return { ...LOAD_BALANCER_LIMIT_DEFAULTS, ...limits };
}

/**
 * One process's share when `processes` balancer processes share the listener: the totals are
 * divided (each process counts only its own connections and bodies), the rest applies as is.
 */
export function limitsPerProcess(limits: ClientLimits, processes: number): ClientLimits {
  const share = (total: number) => Math.max(1, Math.ceil(total / processes));
  return {
    ...limits,
    maxClientConnections: share(limits.maxClientConnections),
    maxBufferedRequestBytesTotal: Math.max(
      limits.maxRequestBodyBytes,
      share(limits.maxBufferedRequestBytesTotal),
    ),
    maxConnectionsPerTarget: share(limits.maxConnectionsPerTarget),
  };
}

/**
 * Request body bytes held by all of a process's connections (bodies are held whole for retries):
 * a request whose body would take it past the total is refused (503) instead of growing memory.
 */
export class BodyBudget {
  private held = 0;

  constructor(readonly totalBytes: number) {}

  /** Takes `bytes` of the budget; false (nothing taken) when they do not fit. */
  take(bytes: number): boolean {
    if (this.held + bytes > this.totalBytes) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
  }

  get heldBytes(): number {
    return this.held;
  }
}

/** Refusals at the connection cap are told at most this often (the first at once). */
const REFUSALS_REPORTED_EVERY_MS = 10_000;

/**
 * Caps `server`'s client connections at `maxClientConnections` (Node closes one beyond it as it is
 * accepted, before any JS runs for it) and says so: a `load-balancer.connections-refused` event at
 * the first refusal, then one per 10 s with that window's count while refusals go on (an event per
 * refused connection would make the flood the event log's).
 */
export function capClientConnections(
  server: Server,
  maxClientConnections: number,
  listener: "http" | "https",
  events: EventPublisher | undefined,
): void {
  server.maxConnections = maxClientConnections;
  if (!events) return;
  let refused = 0;
  let window: NodeJS.Timeout | undefined;
  const report = () => {
    window = undefined;
    if (refused === 0) return;
    events.publish({ type: "load-balancer.connections-refused", listener, refused, maxClientConnections });
    refused = 0;
    window = setTimeout(report, REFUSALS_REPORTED_EVERY_MS);
    window.unref();
  };
  server.on("drop", () => {
    refused++;
    if (!window) report();
  });
  server.once("close", () => {
    clearTimeout(window);
    if (refused > 0)
      events.publish({ type: "load-balancer.connections-refused", listener, refused, maxClientConnections });
  });
}
