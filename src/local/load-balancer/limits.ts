/**
 * What one client may hold of the balancer (`loadBalancer.local.limits`), as each balancer process
 * applies it, and the shared budget for request bodies held at once.
 */
import { LOAD_BALANCER_LIMIT_DEFAULTS } from "../../stack/load-balancer-limits.ts";
import type { LoadBalancerLimits } from "../../stack/schema.ts";

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
