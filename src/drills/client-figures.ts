import { randomBytes } from "node:crypto";
import {
  CLIENT_TRAFFIC_MAX_SECONDS_PER_REPORT as maxSecondsPerReport,
  type ClientTrafficEvent,
  type ClientTrafficSecond,
} from "../local/events/bus.ts";
/** The last report is tried this many times: the drill's own report has the figures anyway. */
const finalAttempts = 3;

/** How a request ended, as the client saw it: a 2xx, or the failure's status or error code. */
export type ClientOutcome = { ok: true } | { ok: false; reason: string };

/** Connection refused: nothing listened there (a region down, its balancer gone). */
const refusedCodes = new Set(["ECONNREFUSED"]);
/** No answer within the client's timeout (undici's codes, and the socket's). */
const timedOutCodes = new Set([
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CONNECT_TIMEOUT",
  "ETIMEDOUT",
]);

/**
 * A client's figures, counted where the failures happen (the client), per second, and sent to the
 * running stack's control plane every second (`StackClient.reportClientTraffic`), where they become
 * `client.traffic` events for the dashboard. Seconds not taken by the stack are kept and sent again
 * with the next report; `close` sends the rest, marked final. Never throws into the traffic: the
 * drill's report holds the same counts whatever the stack did with them.
 */
export class ClientFigures {
  readonly clientId = `${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
  /** Closed seconds the stack has not taken yet, oldest first. */
  private pending: ClientTrafficSecond[] = [];
  private current?: ClientTrafficSecond;
  private timer?: NodeJS.Timeout;
  private sending?: Promise<void>;
  private closed = false;
  private finalSent = false;

  constructor(
    /** Who the client is, in words ("drill region-outage"). */
    readonly client: string,
    private readonly send: (report: Omit<ClientTrafficEvent, "type">) => Promise<void>,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => void this.flush(false), this.intervalMs);
    this.timer.unref();
  }

  /** One request's outcome, in the second it became known. */
  record(outcome: ClientOutcome, now = Date.now()): void {
    const second = this.roll(now);
    if (outcome.ok) second.ok++;
    else {
      second.failed++;
      if (refusedCodes.has(outcome.reason)) second.refused++;
      else if (timedOutCodes.has(outcome.reason)) second.timedOut++;
    }
  }

  /** Sends every second counted (the current one included), marked final; resolves once done or given up. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sending;
    if (this.current) this.pending.push(this.current);
    this.current = undefined;
    for (let attempt = 1; attempt <= finalAttempts; attempt++) {
      await this.flush(true);
      if (this.pending.length === 0 && this.finalSent) return;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }

  /** Closes the seconds before `now`'s. */
  private roll(now: number): ClientTrafficSecond {
    const secondStartMs = Math.floor(now / 1000) * 1000;
    if (this.current && this.current.secondStartMs !== secondStartMs) {
      this.pending.push(this.current);
      this.current = undefined;
    }
    this.current ??= { secondStartMs, ok: 0, failed: 0, refused: 0, timedOut: 0 };
    return this.current;
  }

  /** Sends the closed seconds (all, with `final`), one report at a time; keeps them if not taken. */
  private flush(final: boolean): Promise<void> {
    if (this.sending) return this.sending;
    // A second is closed once the clock left it (an idle client makes no empty seconds).
    if (!final && this.current && this.current.secondStartMs < Math.floor(Date.now() / 1000) * 1000) {
      this.pending.push(this.current);
      this.current = undefined;
    }
    if (!final && this.pending.length === 0) return Promise.resolve();
    this.sending = (async () => {
      try {
        do {
          const seconds = this.pending.slice(0, maxSecondsPerReport);
          const last = seconds.length === this.pending.length;
          await this.send({
            client: this.client,
            clientId: this.clientId,
            seconds,
            final: final && last,
          });
          // Taken: only now are they off the list (a failed send keeps them for the next).
          this.pending.splice(0, seconds.length);
          if (final && last) this.finalSent = true;
        } while (this.pending.length > 0);
      } catch {
        // Kept: sent again with the next report (or the final one).
      } finally {
        this.sending = undefined;
      }
    })();
    return this.sending;
  }
}
