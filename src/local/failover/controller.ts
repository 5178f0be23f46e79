import { request } from "undici";
import type { DerivedSettings, ResolvedStack } from "../../stack/index.ts";
import { ControllerGuard, type RetryHandle } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { Notifier } from "../notifications/notifier.ts";
import type { LocalRegion } from "../region.ts";

export interface FailoverControllerOptions {
  dns: NonNullable<ResolvedStack["dns"]>;
  primary: LocalRegion;
  secondary: LocalRegion;
  /** The probe's path, the secondary's failover and standby sizes: as on AWS. */
  derived: Pick<DerivedSettings, "regionHealthCheckPath" | "failoverCapacity" | "secondaryStandby">;
  events: EventPublisher;
  notifier: Notifier;
}

/**
 * Route 53's health check on the primary region's load balancer, the alarm on it, and the actions
 * seed 002 meant: on failure, DNS answers the secondary and the secondary group is scaled to the
 * primary's desired capacity, with a notification; when the primary is healthy again, DNS fails
 * back, the secondary returns to its standby size (after the TTL, so cached answers drain), with a
 * notification. Failback runs its own action, not the failover's (the seed's bug).
 */
export class FailoverController {
  private timer?: NodeJS.Timeout;
  private failbackTimer?: NodeJS.Timeout;
  private failures = 0;
  private successes = 0;
  private checking = false;
  /** The failover or failback action under way (retried until it succeeds or the other replaces it). */
  private action?: RetryHandle;
  /** A failed check or action is an event; checks run again next interval, actions with back-off. */
  private readonly guard: ControllerGuard;
  primaryHealthy = true;
  failedOver = false;

  constructor(readonly options: FailoverControllerOptions) {
    this.guard = new ControllerGuard({ controller: "failover", events: options.events });
  }

  start(): void {
    this.guard.resume();
    this.timer = setInterval(
      this.guard.wrap(() => this.check(), "checked again at the next interval"),
      this.options.dns.healthCheck.local.intervalMs,
    );
  }

  stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.failbackTimer);
    this.guard.stop();
  }

  /** The failover record pair's answer right now. */
  answer(): string {
    return (this.primaryHealthy ? this.options.primary : this.options.secondary).options.listener.host;
  }

  describe(): { primaryHealthy: boolean; failedOver: boolean } {
    return { primaryHealthy: this.primaryHealthy, failedOver: this.failedOver };
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    const { primary, dns } = this.options;
    let ok = false;
    try {
      const { host, port } = primary.options.listener;
      const res = await request(`http://${host}:${port}${this.options.derived.regionHealthCheckPath}`, {
        headersTimeout: dns.healthCheck.local.intervalMs / 2,
        bodyTimeout: dns.healthCheck.local.intervalMs / 2,
        reset: true,
      });
      await res.body.dump();
      ok = res.statusCode >= 200 && res.statusCode < 400;
    } catch {
      ok = false;
    } finally {
      this.checking = false;
    }
    if (ok) {
      this.failures = 0;
      this.successes++;
    } else {
      this.successes = 0;
      this.failures++;
    }
    // Route 53 uses one threshold for both directions.
    const threshold = dns.healthCheck.failureThreshold;
    if (this.primaryHealthy && this.failures >= threshold) this.onPrimaryUnhealthy();
    else if (!this.primaryHealthy && this.successes >= threshold) this.onPrimaryHealthy();
  }

  private onPrimaryUnhealthy(): void {
    const { events, secondary, primary, notifier } = this.options;
    this.primaryHealthy = false;
    clearTimeout(this.failbackTimer);
    this.action?.cancel();
    events.publish({
      type: "dns.health-changed",
      healthy: false,
      region: primary.name,
      answer: this.answer(),
    });
    events.publish({ type: "alarm.state-changed", alarm: "primary-region-health", state: "ALARM" });
    // The description's capacity, as the failover Lambda sets it on AWS (not the primary's live one).
    const { min, desired } = this.options.derived.failoverCapacity;
    const action = this.guard.retryUntilDone(() => {
      secondary.group.setCapacity({ min, desired }, "failover: the primary region failed its health check");
      this.failedOver = true;
      events.publish({ type: "failover.action", action: "failover", region: secondary.name, desired });
    }, "the failover action is");
    this.action = action;
    void action.done.then((succeeded) => {
      if (!succeeded) return;
      this.guard.retryUntilDone(
        () =>
          notifier.send(`stayup failover: ${primary.name} → ${secondary.name}`, {
            event: "failover",
            primaryRegion: primary.name,
            secondaryRegion: secondary.name,
            secondaryDesiredCapacity: desired,
          }),
        "the failover notification is",
      );
    });
  }

  private onPrimaryHealthy(): void {
    const { events, secondary, primary, notifier, dns } = this.options;
    const standby = this.options.derived.secondaryStandby;
    this.primaryHealthy = true;
    // A failover still retrying no longer applies.
    this.action?.cancel();
    events.publish({
      type: "dns.health-changed",
      healthy: true,
      region: primary.name,
      answer: this.answer(),
    });
    events.publish({ type: "alarm.state-changed", alarm: "primary-region-health", state: "OK" });
    // Clients may hold the secondary's address for one TTL: let it drain before scaling it down.
    this.failbackTimer = setTimeout(
      () => {
        const action = this.guard.retryUntilDone(() => {
          secondary.group.setCapacity(
            { min: standby.min, desired: standby.desired },
            "failback: the primary region is healthy again",
          );
          this.failedOver = false;
          events.publish({
            type: "failover.action",
            action: "failback",
            region: secondary.name,
            desired: standby.desired,
          });
        }, "the failback action is");
        this.action = action;
        void action.done.then((succeeded) => {
          if (!succeeded) return;
          this.guard.retryUntilDone(
            () =>
              notifier.send(`stayup failback: ${secondary.name} → ${primary.name}`, {
                event: "failback",
                primaryRegion: primary.name,
                secondaryRegion: secondary.name,
                secondaryDesiredCapacity: standby.desired,
              }),
            "the failback notification is",
          );
        });
      },
      dns.ttlSeconds * 1000 + 1000,
    );
  }
}
