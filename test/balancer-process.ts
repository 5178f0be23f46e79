/**
 * A load balancer in a process of its own, for tests that measure what hostile clients make it
 * hold: forked with IPC, it gets its targets and settings in a `start` message, answers
 * `listening`, and on `memory` reports its resident set (and the peak since the last `reset-peak`,
 * sampled every 50 ms so a short spike between two questions is not missed). Every event the
 * balancer publishes is sent to the parent as an `event` message.
 */
import { EventBus, type TimedStackEvent } from "../src/local/events/bus.ts";
import {
  LoadBalancer,
  type LoadBalancerOptions,
  type TrafficPolicy,
} from "../src/local/load-balancer/balancer.ts";
import { alwaysRoutable } from "./target-source.ts";

export type ToBalancerProcess =
  | {
      type: "start";
      targetPorts: number[];
      options: Omit<LoadBalancerOptions, "host" | "port">;
      policy?: TrafficPolicy;
    }
  | { type: "memory" }
  | { type: "reset-peak" };

export interface BalancerMemory {
  rssBytes: number;
  peakRssBytes: number;
  heapUsedBytes: number;
  arrayBuffersBytes: number;
}

export type FromBalancerProcess =
  | { type: "listening"; port: number }
  | ({ type: "memory" } & BalancerMemory)
  | { type: "event"; event: TimedStackEvent };

let peakRss = 0;
const sample = () => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
};
setInterval(sample, 50);

const send = (m: FromBalancerProcess) => process.send?.(m);

process.on("message", async (m: ToBalancerProcess) => {
  if (m.type === "start") {
    const events = new EventBus();
    events.subscribe((event) => send({ type: "event", event }));
    const lb = new LoadBalancer(
      alwaysRoutable(m.targetPorts),
      events,
      { host: "127.0.0.1", port: 0, ...m.options },
      m.policy,
    );
    const url = await lb.listen();
    send({ type: "listening", port: Number(new URL(url).port) });
  } else if (m.type === "reset-peak") {
    peakRss = 0;
    sample();
  } else if (m.type === "memory") {
    sample();
    const u = process.memoryUsage();
    send({
      type: "memory",
      rssBytes: u.rss,
      peakRssBytes: peakRss,
      heapUsedBytes: u.heapUsed,
      arrayBuffersBytes: u.arrayBuffers,
    });
  }
});
process.on("disconnect", () => process.exit(0));
