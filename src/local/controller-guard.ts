/**
 * A controller's failure, and what retries it; `repeated` counts the identical failures held back
 * since the last one was published. Defined here, where it is published, and part of the bus's
 * StackEvent: the bus is built on the guard, so the guard cannot import the bus's vocabulary.
 */
export interface ControllerErrorEvent {
  type: "controller.error";
  controller: string;
  error: string;
  retry: string;
  repeated?: number;
}

/** What the guard needs of the bus: publish (a scoped publisher adds the region). */
export interface ErrorPublisher {
  publish(event: ControllerErrorEvent): unknown;
}

/** Time and timers, injectable so the guard is tested on a fake clock. */
export interface GuardClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: GuardClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, ms);
    // A pending retry must not keep a stopping runtime alive.
    timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface ControllerGuardOptions {
  /** The controller's name as the `controller.error` event gives it. */
  controller: string;
  events: ErrorPublisher;
  clock?: GuardClock;
  /** An identical error (same message, same retry) is published at most once per window. */
  repeatWindowMs?: number;
  /** Back-off of one-shot work: the first retry after `initialMs`, doubling up to `maxMs`. */
  backoff?: { initialMs: number; maxMs: number };
}

/** A pending one-shot retry; cancelled when what it would do no longer applies. */
export interface RetryHandle {
  cancel(): void;
  /** Resolves once the work succeeded (true) or was cancelled or the guard stopped (false). */
  readonly done: Promise<boolean>;
}

const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : JSON.stringify(error);

/** Keys remembered for rate limiting; a bounded map, so a stream of distinct errors cannot grow it. */
const MAX_REMEMBERED_ERRORS = 100;

/**
 * The one way a controller's failure is handled: a throw or rejected promise in a timer tick, an
 * event-bus handler or a reconcile pass becomes a `controller.error` event naming the controller,
 * the error and the retry, and the work is retried (the next tick, or a back-off retry for one-shot
 * work). It never reaches the process: one controller's bug must not end the runtime. Identical
 * errors (up to the numbers in them) are published once per window, with the count of the ones held
 * back, so a persistent failure cannot flood the bus.
 */
export class ControllerGuard {
  readonly controller: string;
  private readonly events: ErrorPublisher;
  private readonly clock: GuardClock;
  private readonly repeatWindowMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly published = new Map<string, { at: number; heldBack: number }>();
  private readonly pending = new Set<{ timer?: unknown; finish(succeeded: boolean): void }>();
  private stopped = false;

  constructor(options: ControllerGuardOptions) {
    this.controller = options.controller;
    this.events = options.events;
    this.clock = options.clock ?? realClock;
    this.repeatWindowMs = options.repeatWindowMs ?? 30_000;
    this.backoff = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
  }

  /**
   * Runs `work` now; a throw or a rejection is reported with `retry` (what retries it: usually the
   * next tick of the caller's timer, or the next event). Never throws.
   */
  run(work: () => unknown, retry: string): void {
    try {
      const result = work();
      if (result instanceof Promise) result.catch((error: unknown) => this.report(error, retry));
    } catch (error) {
      this.report(error, retry);
    }
  }

  /** `run` as a callback: for a timer, an event-bus subscriber or an emitter's listener. */
  wrap<A extends unknown[]>(work: (...args: A) => unknown, retry: string): (...args: A) => void {
    return (...args: A) => this.run(() => work(...args), retry);
  }

  /**
   * One-shot work (a restart, a failover action, a delivery): run now and, while it fails, again
   * after a back-off that doubles up to its maximum, until it succeeds, is cancelled, or the guard
   * stops. Each failure is reported (rate-limited as any other).
   */
  retryUntilDone(work: () => unknown, what: string): RetryHandle {
    let attempt = 0;
    let resolveDone!: (succeeded: boolean) => void;
    const done = new Promise<boolean>((resolve) => (resolveDone = resolve));
    const entry: { timer?: unknown; finish(succeeded: boolean): void } = {
      finish: (succeeded) => {
        if (!this.pending.delete(entry)) return;
        if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
        resolveDone(succeeded);
      },
    };
    this.pending.add(entry);
    const failed = (error: unknown) => {
      if (!this.pending.has(entry)) return;
      const delayMs = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** attempt);
      attempt++;
      this.report(error, `${what} retried in ${delayMs / 1000} s`);
      entry.timer = this.clock.setTimeout(() => {
        entry.timer = undefined;
        tryOnce();
      }, delayMs);
    };
    const tryOnce = () => {
      if (this.stopped || !this.pending.has(entry)) return entry.finish(false);
      try {
        const result = work();
        if (result instanceof Promise) result.then(() => entry.finish(true), failed);
        else entry.finish(true);
      } catch (error) {
        failed(error);
      }
    };
    tryOnce();
    return { cancel: () => entry.finish(false), done };
  }

  /** Publishes the failure as a `controller.error` event, unless an identical one was just published. */
  report(error: unknown, retry: string): void {
    const message = messageOf(error);
    // Identical up to its numbers: a pid, a port or a timestamp in a message makes no new failure.
    const key = `${retry}\u0000${message}`.replace(/\d+/g, "#");
    const now = this.clock.now();
    const last = this.published.get(key);
    if (last && now - last.at < this.repeatWindowMs) {
      last.heldBack++;
      return;
    }
    this.published.delete(key);
    this.published.set(key, { at: now, heldBack: 0 });
    if (this.published.size > MAX_REMEMBERED_ERRORS) {
      const oldest = this.published.keys().next().value;
      if (oldest !== undefined) this.published.delete(oldest);
    }
    try {
      this.events.publish({
        type: "controller.error",
        controller: this.controller,
        error: message,
        retry,
        ...(last?.heldBack ? { repeated: last.heldBack } : {}),
      });
    } catch {
      // The bus isolates its subscribers; nothing left to report to if publishing itself failed.
    }
  }

  /** Cancels every pending retry (the controller is stopping). */
  stop(): void {
    this.stopped = true;
    for (const entry of [...this.pending]) entry.finish(false);
  }

  /** Lets a stopped controller's guard retry again (a region brought back). */
  resume(): void {
    this.stopped = false;
  }
}
