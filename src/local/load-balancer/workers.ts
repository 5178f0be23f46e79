import cluster, { type Worker } from "node:cluster";
import { fileURLToPath } from "node:url";
import { StayupError } from "../../shared/errors.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher, TimedStackEvent } from "../events/bus.ts";
import type { InFlightRequests, TargetGroupController } from "../target-group/controller.ts";
import type { Listener, LoadBalancerOptions, ObservedRequest, TrafficPolicy } from "./balancer.ts";
import { clientLimits, limitsPerProcess } from "./limits.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

const workerEntry = fileURLToPath(new URL("./worker.ts", import.meta.url));

/**
 * The load balancer as several processes sharing one listening socket (node:cluster, each worker
 * accepting on it, as nginx's workers do), for throughput one Node.js process cannot reach. Target
 * health stays in this process's target group: every change goes to every worker; a refused
 * connection a worker meets goes to the target group; an ejection one worker decides goes to the
 * others, so failover behaves as with one process.
 */
export class LoadBalancerWorkers implements Listener, InFlightRequests {
  private workers: Worker[] = [];
  /** Bumped with every target change sent to the workers. */
  private generation = 0;
  /** Each worker's latest in-flight report. */
  private readonly inFlightReports = new Map<
    Worker,
    { generation: number; counts: Record<string, number> }
  >();
  private readonly ejectedUntil = new Map<string, number>();
  private readonly unsubscribe: () => void;
  /** A failure relaying to or from the workers is an event; the next message is relayed as usual. */
  private readonly guard: ControllerGuard;
  private answerObserver?: (answer: ObservedRequest) => void;
  url = "";

  /** Each worker's answers, a batch at a time (a quarter second late at most): they are told to send them only while set. */
  get observer(): ((answer: ObservedRequest) => void) | undefined {
    return this.answerObserver;
  }
  set observer(observer: ((answer: ObservedRequest) => void) | undefined) {
    this.answerObserver = observer;
    this.broadcast({ type: "observe", on: observer !== undefined });
  }

  constructor(
    private readonly targetGroup: TargetGroupController,
    private readonly events: EventPublisher,
    readonly options: LoadBalancerOptions,
    private readonly policy: TrafficPolicy,
    readonly count: number,
  ) {
    this.guard = new ControllerGuard({ controller: "load-balancer", events });
    this.unsubscribe = events.subscribe(
      this.guard.wrap((e: TimedStackEvent) => {
        if (e.type.startsWith("target.") && e.type !== "target.ejected" && e.type !== "target.returned") {
          this.generation++;
          this.broadcast(this.targetsMessage());
          this.broadcast({ type: "event", event: e });
        }
      }, "the workers get the targets again with the next target event"),
    );
  }

  /** The worker processes' ids (the benchmark reads their CPU time). */
  pids(): number[] {
    return this.workers.flatMap((w) => (w.process.pid === undefined ? [] : [w.process.pid]));
  }

  private targetsMessage(): ToWorker {
    return {
      type: "targets",
      generation: this.generation,
      routable: [...this.targetGroup.routable()],
      all: this.targetGroup.all(),
    };
  }

  /**
   * Requests in flight to `instanceId` over all workers (InFlightRequests, for draining). A worker
   * that has not reported since the latest target change counts as busy: it may not know yet that
   * the target drains, and may still be sending it requests.
   */
  inFlight(instanceId: string): number {
    let total = 0;
    for (const w of this.workers) {
      if (!w.isConnected()) continue;
      const report = this.inFlightReports.get(w);
      if (!report || report.generation < this.generation) return 1;
      total += report.counts[instanceId] ?? 0;
    }
    return total;
  }

  private broadcast(message: ToWorker, except?: Worker): void {
    for (const w of this.workers) if (w !== except && w.isConnected()) w.send(message);
  }

  private onMessage(worker: Worker, m: FromWorker): void {
    if (m.type === "connection-failure") {
      this.targetGroup.reportConnectionFailure(m.instanceId, m.reason);
    } else if (m.type === "answers") {
      const observer = this.answerObserver;
      if (observer) for (const answer of m.answers) observer(answer);
    } else if (m.type === "in-flight") {
      this.inFlightReports.set(worker, { generation: m.generation, counts: m.counts });
    } else if (m.type === "publish") {
      const e = m.event;
      if (e.type === "load-balancer.listening") return; // published once, by listen()
      if (e.type === "target.ejected") {
        // Shared: the first worker's ejection holds for all; the others' would only repeat it.
        if ((this.ejectedUntil.get(e.instanceId) ?? 0) > Date.now()) return;
        this.ejectedUntil.set(e.instanceId, Date.now() + e.forMs);
        this.broadcast({ type: "eject", instanceId: e.instanceId, forMs: e.forMs }, worker);
      } else if (e.type === "target.returned") {
        if (!this.ejectedUntil.delete(e.instanceId)) return;
      }
      this.events.publish(e);
    }
  }

  async listen(): Promise<string> {
    // Every worker accepts on the shared socket itself (no round-robin through this process).
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({
      exec: workerEntry,
      execArgv: ["--import", import.meta.resolve("tsx")],
      silent: false,
    });
    const started = Array.from({ length: this.count }, () => this.startWorker());
    try {
      const urls = await Promise.all(started);
      this.url = urls[0] ?? "";
    } catch (error) {
      await this.close();
      throw error;
    }
    this.events.publish({ type: "load-balancer.listening", url: this.url });
    return this.url;
  }

  private startWorker(): Promise<string> {
    const worker = cluster.fork({ STAYUP_LB_WORKER: "1" });
    this.workers.push(worker);
    return new Promise((resolve, reject) => {
      worker.on("message", (m: FromWorker) => {
        if (m.type === "ready") {
          worker.send(this.targetsMessage());
          if (this.answerObserver) worker.send({ type: "observe", on: true } satisfies ToWorker);
          // Each worker counts its own connections and bodies: it gets its share of the totals.
          const listener: LoadBalancerOptions = {
            host: this.options.host,
            port: this.options.port,
            targetTimeoutMs: this.options.targetTimeoutMs,
            limits: limitsPerProcess(clientLimits(this.options.limits), this.count),
          };
          worker.send({ type: "start", listener, policy: this.policy } satisfies ToWorker);
        } else if (m.type === "listening") resolve(m.url);
        else if (m.type === "listen-failed") {
          reject(
            new StayupError(
              m.message,
              "pass --port with a free port, or change loadBalancer.local.port in stayup.config.ts",
            ),
          );
        } else
          this.guard.run(() => this.onMessage(worker, m), "the worker's next message is handled as usual");
      });
      worker.once("exit", (code, signal) => {
        this.workers = this.workers.filter((w) => w !== worker);
        reject(new StayupError(`load balancer worker exited while starting (${signal ?? `code ${code}`})`));
      });
    });
  }

  async close(): Promise<void> {
    const workers = this.workers;
    this.workers = [];
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once("exit", () => resolve());
            w.disconnect();
            setTimeout(() => w.process.kill("SIGKILL"), 3000).unref();
          }),
      ),
    );
  }

  stop(): void {
    this.unsubscribe();
  }
}
