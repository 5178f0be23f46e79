/**
 * One worker process of a load balancer run as several processes sharing one listener (as nginx
 * runs workers). The runtime's target group stays the one source of target health: this process
 * gets its targets over IPC, reports refused connections and ejections back, applies the
 * ejections other workers decided, and reports its requests in flight to draining targets.
 */
import { RemoteEvents, type StackEvent, type TimedStackEvent } from "../events/bus.ts";
import type { Target } from "../target-group/controller.ts";
import {
  LoadBalancer,
  type LoadBalancerOptions,
  type ObservedRequest,
  type TargetSource,
  type TrafficPolicy,
} from "./balancer.ts";

export type ToWorker =
  | { type: "start"; listener: LoadBalancerOptions; policy: TrafficPolicy }
  /** `generation` counts the runtime's target changes: an in-flight report names the one it saw. */
  | { type: "targets"; generation: number; routable: Target[]; all: Target[] }
  | { type: "event"; event: TimedStackEvent }
  | { type: "eject"; instanceId: string; forMs: number }
  /** Whether the runtime has an observer (the dashboard): then this worker sends its answers. */
  | { type: "observe"; on: boolean };

export type FromWorker =
  | { type: "ready" }
  | { type: "listening"; url: string }
  | { type: "listen-failed"; message: string }
  | { type: "publish"; event: StackEvent }
  | { type: "connection-failure"; instanceId: string; reason: string }
  /** This worker's requests in flight to each draining target, as of targets `generation`. */
  | { type: "in-flight"; generation: number; counts: Record<string, number> }
  /** The answers this worker sent since its last batch, for the runtime's observer. */
  | { type: "answers"; answers: ObservedRequest[] };

const send = (m: FromWorker) => process.send?.(m);

class RemoteTargets implements TargetSource {
  routableTargets: Target[] = [];
  byId = new Map<string, Target>();
  routable(): readonly Target[] {
    return this.routableTargets;
  }
  get(instanceId: string): Target | undefined {
    return this.byId.get(instanceId);
  }
  reportConnectionFailure(instanceId: string, reason: string): void {
    // Out of this worker's rotation at once; the runtime's target group tells every worker.
    this.routableTargets = this.routableTargets.filter((t) => t.instanceId !== instanceId);
    send({ type: "connection-failure", instanceId, reason });
  }
}

const targets = new RemoteTargets();
// Subscribers isolated as on the runtime's bus: one that throws is a controller.error sent to the runtime.
const events = new RemoteEvents((event) => send({ type: "publish", event }), "load-balancer-worker");
let balancer: LoadBalancer | undefined;
let generation = 0;
let reporter: NodeJS.Timeout | undefined;

/**
 * Answers wait here for the next batch: one IPC message per `answersBatchMs` rather than one per
 * request. Past `maxAnswersPerBatch` a batch goes at once (a worker at full speed). A path or
 * User-Agent is cut to `maxAnswerFieldChars` (the meter reads only the User-Agent's first word).
 */
const answersBatchMs = 250;
const maxAnswersPerBatch = 5000;
const maxAnswerFieldChars = 200;
let observing = false;
let answers: ObservedRequest[] = [];
let answersTimer: NodeJS.Timeout | undefined;

function sendAnswers(): void {
  clearTimeout(answersTimer);
  answersTimer = undefined;
  if (answers.length === 0) return;
  send({ type: "answers", answers });
  answers = [];
}

function observe(answer: ObservedRequest): void {
  answers.push({
    ...answer,
    path: answer.path.slice(0, maxAnswerFieldChars),
    ...(answer.userAgent === undefined ? {} : { userAgent: answer.userAgent.slice(0, maxAnswerFieldChars) }),
  });
  if (answers.length >= maxAnswersPerBatch) sendAnswers();
  else if (!answersTimer) {
    answersTimer = setTimeout(sendAnswers, answersBatchMs);
    answersTimer.unref();
  }
}

/** Requests in flight to the draining targets: draining ends when every worker reports none. */
function reportInFlight(): void {
  const counts: Record<string, number> = {};
  let draining = false;
  for (const t of targets.byId.values()) {
    if (t.health !== "draining") continue;
    draining = true;
    counts[t.instanceId] = balancer?.inFlight(t.instanceId) ?? 0;
  }
  send({ type: "in-flight", generation, counts });
  // While a target drains, its count goes on being reported (the runtime polls it).
  if (draining && !reporter) {
    reporter = setInterval(reportInFlight, 20);
    reporter.unref();
  } else if (!draining && reporter) {
    clearInterval(reporter);
    reporter = undefined;
  }
}

process.on("message", (m: ToWorker) => {
  if (m.type === "targets") {
    targets.routableTargets = m.routable;
    targets.byId = new Map(m.all.map((t) => [t.instanceId, t]));
    generation = m.generation;
    reportInFlight();
  } else if (m.type === "event") {
    events.deliver(m.event);
  } else if (m.type === "eject") {
    balancer?.applyEjection(m.instanceId, m.forMs);
  } else if (m.type === "observe") {
    observing = m.on;
    if (balancer) balancer.observer = observing ? observe : undefined;
    if (!observing) answers = [];
  } else if (m.type === "start" && !balancer) {
    balancer = new LoadBalancer(targets, events, { ...m.listener, shared: true }, m.policy);
    if (observing) balancer.observer = observe;
    balancer.listen().then(
      (url) => send({ type: "listening", url }),
      (error: Error) => send({ type: "listen-failed", message: error.message }),
    );
  }
});
// Messages sent before this module ran would be lost: say when it listens.
send({ type: "ready" });
// The runtime went away (or closes the listener): finish what is in flight and exit.
process.on("disconnect", () => {
  void (balancer?.close() ?? Promise.resolve()).finally(() => {
    sendAnswers();
    process.exit(0);
  });
});
