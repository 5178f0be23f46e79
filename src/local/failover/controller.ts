import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { DerivedSettings, ResolvedStack } from "../../stack/index.ts";
import { REGION_HEALTH_CHECK_USER_AGENT } from "../../stack/derived.ts";
import { httpCheck } from "../../shared/http-check.ts";
import { route53FailoverAnswer } from "../../stack/route53-failover.ts";
import { ControllerGuard, type RetryHandle } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { InstanceGroupController } from "../instance-group/controller.ts";
import type { Notifier } from "../notifications/notifier.ts";

/**
 * What failover needs of a region (a LocalRegion, which the runtime composes from the controllers
 * this is one of): its name, its listener to probe and its group to resize.
 */
export interface FailoverRegion {
  readonly name: string;
  readonly options: { readonly listener: { readonly host: string; readonly port: number } };
  readonly group: Pick<InstanceGroupController, "setCapacity">;
}

export interface FailoverControllerOptions {
  dns: NonNullable<ResolvedStack["dns"]>;
  primary: FailoverRegion;
  secondary: FailoverRegion;
  /** The probe's path, the secondary's failover and standby sizes: as on AWS. */
  derived: Pick<
    DerivedSettings,
    | "regionHealthCheckPath"
    | "regionHealthCheckTimeoutMs"
    | "failoverCapacity"
    | "secondaryStandby"
    | "failoverRecords"
    | "regionTiming"
    | "instanceHealthCheck"
  >;
  events: EventPublisher;
  notifier: Notifier;
  /**
   * The regions' Redis, when it crosses regions (`redis.crossRegion: "replica"`): a failover
   * promotes the secondary's copy; before a failback, the primary's catches up and is promoted.
   */
  crossRegion?: CrossRegionSeam;
}

/** What failover does to Redis across regions (src/local/redis/cross-region.ts behind it). */
export interface CrossRegionSeam {
  promoteSecondary(): Promise<void>;
  /** The primary's Redis follows the secondary's: once the primary passes its check, failBack. */
  readonly awaitsFailback: boolean;
  /** While it follows: the primary's Redis answers as a copy whose link to the writer is up. */
  primaryFollowingInSync(): Promise<boolean>;
  failBack(): Promise<void>;
}

export type ProbeOutcome = "answered-ok" | "answered-error" | "connection-failed" | "timed-out";
export type ProbeVerdict = "pass" | "fail" | "inconclusive";

/**
 * What one probe of the primary says. A timeout means the region did not answer in time only if
 * the prober itself was listening: when the prober's own event loop was saturated or stalled for
 * half the timeout (locally it shares a host, and a process, with the busy stack), the answer may
 * have been sitting unread, so the probe proves nothing either way. Route 53 gets the same
 * robustness from its many checkers, one of which being slow does not fail a region. An answer, an
 * error status or a failed connection (refused, reset) always counts.
 */
export function probeVerdict(probe: {
  outcome: ProbeOutcome;
  timeoutMs: number;
  /** The prober's event loop during the probe: busy share (0..1) and longest stall. */
  proberUtilization: number;
  proberMaxStallMs: number;
}): ProbeVerdict {
  if (probe.outcome === "answered-ok") return "pass";
  if (probe.outcome !== "timed-out") return "fail";
  const proberBusy = probe.proberUtilization >= 0.9 || probe.proberMaxStallMs >= probe.timeoutMs / 2;
  return proberBusy ? "inconclusive" : "fail";
}

/**
 * Route 53's health check on the primary region's load balancer, the alarm on it, and the actions
 * seed 002 meant: on failure, DNS answers the secondary and the secondary group is scaled to the
 * primary's desired capacity, with a notification; when the primary is healthy again, DNS fails
 * back, the secondary returns to its standby size (after the TTL, so cached answers drain), with a
 * notification. Failback runs its own action, not the failover's (the seed's bug).
 */
/** One Route 53 health check on one region's listener: its counters and its own prober's load. */
class RegionHealthCheck {
  failures = 0;
  successes = 0;
  checking = false;
  healthy = true;
  /** Probes that timed out while this process was too busy to tell (see probeVerdict). */
  inconclusive = 0;
  /** This process's event-loop stalls, reset at each probe. */
  readonly loopDelay = monitorEventLoopDelay({ resolution: 20 });
  constructor(readonly region: FailoverRegion) {}
}

/**
 * Route 53's health checks on the failover records (the primary region's always, the secondary's
 * with `dns.healthCheck.checkedRecords: "both"`), the alarm on the primary's, and the actions
 * seed 002 meant: on failure the secondary group is scaled to the primary's desired capacity, with
 * a notification; when the primary is healthy again the secondary returns to its standby size
 * (after the TTL, so cached answers drain), with a notification. DNS answers what Route 53 would
 * with these records and health states (route53FailoverAnswer), so the secondary-unhealthy rule
 * holds here too.
 */
export class FailoverController {
  private readonly timers: NodeJS.Timeout[] = [];
  private failbackTimer?: NodeJS.Timeout;
  /** The cross-region Redis failback under way. */
  private redisFailback?: RetryHandle;
  /** The failover or failback action under way (retried until it succeeds or the other replaces it). */
  private action?: RetryHandle;
  /** A failed check or action is an event; checks run again next interval, actions with back-off. */
  private readonly guard: ControllerGuard;
  private readonly checks: { primary: RegionHealthCheck; secondary?: RegionHealthCheck };
  failedOver = false;

  constructor(readonly options: FailoverControllerOptions) {
    this.guard = new ControllerGuard({ controller: "failover", events: options.events });
    const secondaryChecked = options.derived.failoverRecords.some(
      (r) => r.failover === "SECONDARY" && r.healthCheck !== undefined,
    );
    this.checks = {
      primary: new RegionHealthCheck(options.primary),
      secondary: secondaryChecked ? new RegionHealthCheck(options.secondary) : undefined,
    };
  }

  get primaryHealthy(): boolean {
    return this.checks.primary.healthy;
  }

  /** Probes of the primary that timed out while this process was too busy to tell. */
  get inconclusive(): number {
    return this.checks.primary.inconclusive;
  }

  start(): void {
    this.guard.resume();
    for (const check of [this.checks.primary, this.checks.secondary]) {
      if (!check) continue;
      check.loopDelay.enable();
      this.timers.push(
        setInterval(
          this.guard.wrap(() => this.check(check), "checked again at the next interval"),
          this.options.dns.healthCheck.local.intervalMs,
        ),
      );
    }
  }

  stop(): void {
    this.redisFailback?.cancel();
    for (const check of [this.checks.primary, this.checks.secondary]) check?.loopDelay.disable();
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    clearTimeout(this.failbackTimer);
    this.guard.stop();
  }

  /** The failover record pair's answer right now, as Route 53 gives it. */
  answer(): string {
    const answer = route53FailoverAnswer(this.options.derived.failoverRecords, {
      checks: {
        primary: this.checks.primary.healthy,
        ...(this.checks.secondary ? { secondary: this.checks.secondary.healthy } : {}),
      },
    });
    return this.options[answer.value].options.listener.host;
  }

  describe(): {
    primaryHealthy: boolean;
    secondaryHealthy?: boolean;
    failedOver: boolean;
    /** Failed checks × interval before a region is called down (longer than inRegionBudgetMs). */
    regionDetectionMs: number;
    inRegionBudgetMs: number;
    ttlSeconds: number;
  } {
    const timing = this.options.derived.regionTiming?.local;
    return {
      primaryHealthy: this.checks.primary.healthy,
      ...(this.checks.secondary ? { secondaryHealthy: this.checks.secondary.healthy } : {}),
      failedOver: this.failedOver,
      regionDetectionMs: timing?.regionDetectionMs ?? 0,
      inRegionBudgetMs: timing?.inRegionBudgetMs.total ?? 0,
      ttlSeconds: this.options.dns.ttlSeconds,
    };
  }

  private async check(state: RegionHealthCheck): Promise<void> {
    if (state.checking) return;
    state.checking = true;
    const { dns } = this.options;
    let outcome: ProbeOutcome = "timed-out";
    const timeoutMs = this.options.derived.regionHealthCheckTimeoutMs;
    state.loopDelay.reset();
    const utilizationBefore = performance.eventLoopUtilization();
    try {
      const { host, port } = state.region.options.listener;
      // The region health rule: it can serve if its instances answer and its Redis answers, taking
      // writes where it is the writer (/health/deep judges both). While the primary's Redis follows
      // the secondary's, the local instances cannot reach it (their Sentinels watch nothing then):
      // the rule is asked in its two halves, the instances' check and the Redis copy's link.
      const following = state === this.checks.primary && this.awaitingRedisFailback;
      const path = following
        ? this.options.derived.instanceHealthCheck.path
        : this.options.derived.regionHealthCheckPath;
      const res = await httpCheck(`http://${host}:${port}${path}`, {
        // Named as Route 53's checkers name themselves: the dashboard tells a probe from a client by it.
        headers: { "user-agent": REGION_HEALTH_CHECK_USER_AGENT },
        // A probe may outlast the interval: the next one waits for it (`checking`).
        timeoutMs,
      });
      outcome = res.statusCode >= 200 && res.statusCode < 400 ? "answered-ok" : "answered-error";
      if (
        outcome === "answered-ok" &&
        following &&
        !(await this.options.crossRegion?.primaryFollowingInSync())
      ) {
        outcome = "answered-error";
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "";
      outcome = code.endsWith("_TIMEOUT") ? "timed-out" : "connection-failed";
    } finally {
      state.checking = false;
    }
    const verdict = probeVerdict({
      outcome,
      timeoutMs,
      proberUtilization: performance.eventLoopUtilization(utilizationBefore).utilization,
      proberMaxStallMs: state.loopDelay.max / 1e6,
    });
    // During a Redis failback the primary's Redis changes role (caught up, promoted): a probe then proves nothing.
    if (this.redisFailback && state === this.checks.primary) return;
    if (verdict === "inconclusive") {
      state.inconclusive++;
      return;
    }
    if (verdict === "pass") {
      state.failures = 0;
      state.successes++;
    } else {
      state.successes = 0;
      state.failures++;
    }
    // Route 53 uses one threshold for both directions.
    const threshold = dns.healthCheck.failureThreshold;
    const changed =
      (state.healthy && state.failures >= threshold) || (!state.healthy && state.successes >= threshold);
    if (!changed) return;
    // Read before the flip: the primary is back while its Redis still follows the secondary's.
    const redisFailbackDue = state === this.checks.primary && this.awaitingRedisFailback;
    state.healthy = !state.healthy;
    this.options.events.publish({
      type: "dns.health-changed",
      healthy: state.healthy,
      region: state.region.name,
      answer: this.answer(),
    });
    // The alarms watch the primary's check only (as on AWS).
    if (state !== this.checks.primary) return;
    if (!state.healthy) this.onPrimaryUnhealthy();
    else if (redisFailbackDue) this.failBackRedis();
    else this.onPrimaryHealthy();
  }

  private get awaitingRedisFailback(): boolean {
    return !this.primaryHealthy && Boolean(this.options.crossRegion?.awaitsFailback);
  }

  /**
   * The primary region is back (its instances pass their check) while its Redis follows the
   * secondary's. DNS answers the primary first: its instances hold the writes they get (up to their
   * write hold) while clients that still hold the secondary's address (one TTL) are served there.
   * Then the secondary's writes pause, the primary's Redis catches up and is promoted, the held
   * writes go on from there, and the secondary's Redis follows the primary's.
   */
  private failBackRedis(): void {
    const crossRegion = this.options.crossRegion;
    if (!crossRegion || this.redisFailback) return;
    this.onPrimaryHealthy();
    let handle: RetryHandle | undefined;
    const timer = setTimeout(
      () => {
        handle = this.guard.retryUntilDone(
          () => crossRegion.failBack(),
          "the failback of Redis to the primary region is",
        );
        void handle.done.then(() => {
          if (this.redisFailback === pending) this.redisFailback = undefined;
        });
      },
      this.options.dns.ttlSeconds * 1000 + 250,
    );
    const pending: RetryHandle = {
      cancel: () => {
        clearTimeout(timer);
        handle?.cancel();
        if (this.redisFailback === pending) this.redisFailback = undefined;
      },
      done: Promise.resolve(false),
    };
    this.redisFailback = pending;
  }

  private onPrimaryUnhealthy(): void {
    const { events, secondary, primary, notifier } = this.options;
    clearTimeout(this.failbackTimer);
    this.action?.cancel();
    events.publish({ type: "alarm.state-changed", alarm: "primary-region-health", state: "ALARM" });
    // The description's capacity, as the failover Lambda sets it on AWS (not the primary's live one).
    const { min, desired } = this.options.derived.failoverCapacity;
    const action = this.guard.retryUntilDone(async () => {
      // The secondary's Redis takes writes before its instances are asked to serve them.
      await this.options.crossRegion?.promoteSecondary();
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
    // A failover still retrying no longer applies.
    this.action?.cancel();
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
