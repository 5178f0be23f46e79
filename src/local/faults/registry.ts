import { randomUUID } from "node:crypto";
import type { EventPublisher } from "../events/bus.ts";

/** The command that clears every fault in force (what `stayup status` points to). */
export const clearFaultsCommand = "stayup faults clear";

/** A fault injected into the running stack and not yet cleared. */
export interface FaultInForce {
  /** One per thing broken: `az-outage:<region>:<az>`, `region-outage:<region>`, `instance:<region>:<id>`, `redis:<region>`. */
  id: string;
  kind: "az-outage" | "region-outage" | "instance" | "redis";
  region: string;
  /** What is broken, for people. */
  description: string;
  since: string;
  /** The drill that injected it, holding a lease: when the lease lapses (the drill ended, was interrupted or died), the fault is cleared. */
  owner?: { lease: string; drill?: string; pid?: number };
  /** What clears it. */
  clear: string;
}

export type NewFault = Pick<FaultInForce, "id" | "kind" | "region" | "description">;

/** A lease no longer accepts faults: its drill is over. */
export class FaultLeaseClosedError extends Error {}

interface Lease {
  id: string;
  drill?: string;
  pid?: number;
  closed: boolean;
}

/**
 * Every fault in force in the stack, each with what restores it. A drill holds a lease (the
 * control plane's `GET /faults/lease`, a connection left open) and injects its faults under it:
 * when the lease closes (the drill finished, was interrupted, or its process died and the kernel
 * closed the connection), the stack restores that lease's faults itself, and the lease accepts no
 * new fault (a request the drill sent before it died cannot break the stack after).
 */
export class FaultRegistry {
  private readonly faults = new Map<string, { fault: FaultInForce; restore: () => Promise<void> | void }>();
  private readonly leases = new Map<string, Lease>();

  constructor(private readonly events: EventPublisher) {}

  openLease(owner: { drill?: string; pid?: number }): string {
    const id = randomUUID();
    this.leases.set(id, { id, ...owner, closed: false });
    return id;
  }

  /** Closes a lease and clears the faults injected under it. */
  async closeLease(id: string, reason: string): Promise<FaultInForce[]> {
    const lease = this.leases.get(id);
    if (lease) lease.closed = true;
    return this.clear(reason, (f) => f.owner?.lease === id);
  }

  /** Throws unless `lease` (if given) is open: a closed or unknown one injects nothing. */
  assertOpen(lease: string | undefined): void {
    if (lease === undefined) return;
    const open = this.leases.get(lease);
    if (!open || open.closed) {
      throw new FaultLeaseClosedError(
        `fault lease ${lease} is ${open ? "closed: its drill is over (interrupted?)" : "unknown"}; nothing injected`,
      );
    }
  }

  /**
   * Records a fault now in force (replacing one with the same id) with what restores it. Under a
   * lease that closed while the fault was being injected (a region takes a moment to go down), it
   * is restored at once instead: its drill is gone.
   */
  add(fault: NewFault, restore: () => Promise<void> | void, lease?: string): void {
    const owner = lease ? this.leases.get(lease) : undefined;
    if (lease !== undefined && (!owner || owner.closed)) {
      const placeholder = {
        fault: { ...fault, since: new Date().toISOString(), clear: clearFaultsCommand },
        restore,
      };
      this.faults.set(fault.id, placeholder);
      void this.clear("its drill ended while it was being injected", (f) => f === placeholder.fault);
      return;
    }
    this.faults.set(fault.id, {
      fault: {
        ...fault,
        since: this.faults.get(fault.id)?.fault.since ?? new Date().toISOString(),
        ...(owner ? { owner: { lease: owner.id, drill: owner.drill, pid: owner.pid } } : {}),
        clear: clearFaultsCommand,
      },
      restore,
    });
  }

  /** The fault was restored through its own route (the drill's normal end). */
  forget(id: string): void {
    this.faults.delete(id);
  }

  list(): FaultInForce[] {
    return [...this.faults.values()].map((f) => f.fault);
  }

  /**
   * Restores every fault in force (those `which` selects), each once even if asked twice at the
   * same time; a restore that fails leaves its fault listed (and the error in a `fault.cleared`
   * event), so `stayup faults clear` can be run again.
   */
  async clear(reason: string, which: (f: FaultInForce) => boolean = () => true): Promise<FaultInForce[]> {
    const cleared: FaultInForce[] = [];
    const selected = [...this.faults.values()].filter((f) => which(f.fault));
    await Promise.all(
      selected.map(async ({ fault, restore }) => {
        if (this.faults.get(fault.id)?.fault !== fault) return; // cleared meanwhile
        try {
          await restore();
          if (this.faults.get(fault.id)?.fault === fault) this.faults.delete(fault.id);
          cleared.push(fault);
          this.events.publish({
            type: "fault.cleared",
            fault: fault.id,
            description: fault.description,
            reason,
          });
        } catch (error) {
          this.events.publish({
            type: "fault.cleared",
            fault: fault.id,
            description: fault.description,
            reason: `${reason}; restoring failed: ${(error as Error).message} (run \`${clearFaultsCommand}\` again)`,
          });
        }
      }),
    );
    return cleared;
  }
}
