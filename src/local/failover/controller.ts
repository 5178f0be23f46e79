import { request } from "undici";
import type { DerivedSettings, ResolvedStack } from "../../stack/index.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { Notifier } from "../notifications/notifier.ts";
import type { LocalRegion } from "../region.ts";

export interface FailoverControllerOptions {
  dns: NonNullable<ResolvedStack["dns"]>;
  primary: LocalRegion;
  secondary: LocalRegion;
  /** The probe's path, the secondary's failover and standby sizes: as on AWS. */
  derived: Pick<
    DerivedSettings,
    "regionHealthCheckPath" | "regionHealthCheckTimeoutMs" | "failoverCapacity" | "secondaryStandby"
  >;
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
  primaryHealthy = true;
  failedOver = false;

  constructor(readonly options: FailoverControllerOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.dns.healthCheck.local.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.failbackTimer);
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
        // A probe may outlast the interval: the next one waits for it (`checking`).
        headersTimeout: this.options.derived.regionHealthCheckTimeoutMs,
        bodyTimeout: this.options.derived.regionHealthCheckTimeoutMs,
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
    if (this.primaryHealthy && this.failures >= threshold) void this.onPrimaryUnhealthy();
    else if (!this.primaryHealthy && this.successes >= threshold) void this.onPrimaryHealthy();
  }

  private async onPrimaryUnhealthy(): Promise<void> {
    const { events, secondary, primary, notifier } = this.options;
    this.primaryHealthy = false;
    clearTimeout(this.failbackTimer);
    events.publish({
      type: "dns.health-changed",
      healthy: false,
      region: primary.name,
      answer: this.answer(),
    });
    events.publish({ type: "alarm.state-changed", alarm: "primary-region-health", state: "ALARM" });
    // The description's capacity, as the failover Lambda sets it on AWS (not the primary's live one).
    const { min, desired } = this.options.derived.failoverCapacity;
    secondary.group.setCapacity({ min, desired }, "failover: the primary region failed its health check");
    this.failedOver = true;
    events.publish({ type: "failover.action", action: "failover", region: secondary.name, desired });
    await notifier.send(`stayup failover: ${primary.name} → ${secondary.name}`, {
      event: "failover",
      primaryRegion: primary.name,
      secondaryRegion: secondary.name,
      secondaryDesiredCapacity: desired,
    });
  }

  private async onPrimaryHealthy(): Promise<void> {
    const { events, secondary, primary, notifier, dns } = this.options;
    const standby = this.options.derived.secondaryStandby;
    this.primaryHealthy = true;
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
        void notifier.send(`stayup failback: ${secondary.name} → ${primary.name}`, {
          event: "failback",
          primaryRegion: primary.name,
          secondaryRegion: secondary.name,
          secondaryDesiredCapacity: standby.desired,
        });
      },
      dns.ttlSeconds * 1000 + 1000,
    );
  }
}
