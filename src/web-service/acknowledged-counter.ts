import type { Redis } from "ioredis";

export interface AcknowledgedCounterOptions {
  /** Redis key of the counter. */
  key: string;
  /**
   * A count is acknowledged (answered) only once this many replicas hold it (Redis WAIT), so the
   * loss of the primary cannot take it away. 0: a single node, no waiting.
   */
  replicas: number;
  /**
   * How long one request holds and retries against Redis (a failover: the primary is gone, the
   * new one not yet promoted or without replicas yet) before it is answered 503. 0: no retry.
   */
  holdMs: number;
  /** Longest single WAIT; bounded by what remains of the hold. */
  waitTimeoutMs?: number;
  /** Pause between two attempts. */
  retryDelayMs?: number;
}

/** Why a count could not be acknowledged within the hold: answered 503, never 200. */
export class CountNotAcknowledged extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The page counter with its durability rule: INCR, then WAIT until `replicas` replicas hold it.
 * Concurrent requests share one WAIT (a WAIT covers every write sent before it on the connection),
 * so a slow replica costs one round trip for all of them, not one each.
 */
export class AcknowledgedCounter {
  private waiting?: Promise<number>;
  private queued?: Promise<number>;

  constructor(
    private readonly redis: Redis,
    private readonly options: AcknowledgedCounterOptions,
  ) {}

  /** The new count, held by the required replicas; throws CountNotAcknowledged otherwise. */
  async increment(): Promise<number> {
    const { replicas, holdMs } = this.options;
    const deadline = Date.now() + holdMs;
    const retryDelayMs = this.options.retryDelayMs ?? 100;
    for (;;) {
      let reason: string;
      try {
        // A retry after an INCR whose WAIT failed increments again: the count may skip a number
        // (the first one may or may not survive the failover), it never goes back.
        const count = await this.redis.incr(this.options.key);
        if (replicas === 0) return count;
        const timeoutMs = Math.max(
          10,
          Math.min(this.options.waitTimeoutMs ?? 1000, deadline - Date.now() - retryDelayMs),
        );
        const acknowledged = await this.acknowledgements(timeoutMs);
        if (acknowledged >= replicas) return count;
        reason = `only ${acknowledged} of ${replicas} replica(s) acknowledged the write`;
      } catch (error) {
        reason = (error as Error).message;
      }
      if (Date.now() + retryDelayMs >= deadline) throw new CountNotAcknowledged(reason);
      await sleep(retryDelayMs);
    }
  }

  /** Replicas holding every write sent so far on this connection (shared WAIT). */
  private acknowledgements(timeoutMs: number): Promise<number> {
    if (!this.waiting) {
      this.waiting = this.redis.wait(this.options.replicas, timeoutMs).finally(() => {
        this.waiting = undefined;
      });
      return this.waiting;
    }
    // The WAIT in flight may have been sent before this request's INCR: join the next one.
    this.queued ??= this.waiting
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.acknowledgements(timeoutMs);
      });
    return this.queued;
  }
}
