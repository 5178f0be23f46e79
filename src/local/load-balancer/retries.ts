/**
 * Retries of a request on another target, and the retry budget that keeps them from multiplying an
 * overload (Envoy's): retries in flight may be at most a share of the requests in flight, with a
 * floor so a quiet balancer can still retry.
 */
import { UPSTREAM_CONNECT_TIMEOUT } from "./upstream-pool.ts";
import { TARGET_DRAINING } from "./draining.ts";

export interface RetrySettings {
  maxAttempts: number;
  perTryTimeoutMs: number;
  budgetPercent: number;
  minRetryConcurrency: number;
}

/** Without retry settings: 3 tries (for refused connections), no per-try timeout, no budget. */
export const noRetries: RetrySettings = {
  maxAttempts: 3,
  perTryTimeoutMs: 0,
  budgetPercent: 100,
  minRetryConcurrency: Number.MAX_SAFE_INTEGER,
};

// RFC 9110 §9.2.2: a retry of these cannot change the outcome.
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export const isIdempotent = (method: string): boolean => IDEMPOTENT.has(method);

// Errors raised before a single byte of the request left this process: always safe to retry.
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  UPSTREAM_CONNECT_TIMEOUT,
  TARGET_DRAINING,
]);

/** The try failed before any byte of the request reached the target. */
export const notSent = (code: string): boolean => NOT_SENT.has(code);

/** Counts requests and retries in flight, and says whether one more retry fits the budget. */
export class RetryBudget {
  /** Requests being handled, and retries among their tries in flight. */
  private active = 0;
  private retriesInFlight = 0;

  constructor(readonly settings: RetrySettings) {}

  requestStarted(): void {
    this.active++;
  }

  requestEnded(): void {
    this.active--;
  }

  tryStarted(attempt: number): void {
    if (attempt > 0) this.retriesInFlight++;
  }

  tryEnded(attempt: number): void {
    if (attempt > 0) this.retriesInFlight--;
  }

  /** Whether a request that failed try number `attempt` (0 the first) may be tried again. */
  allows(method: string, attempt: number): boolean {
    const s = this.settings;
    if (!IDEMPOTENT.has(method) || attempt + 1 >= s.maxAttempts) return false;
    const budget = Math.max(s.minRetryConcurrency, Math.floor((this.active * s.budgetPercent) / 100));
    return this.retriesInFlight < budget;
  }
}
