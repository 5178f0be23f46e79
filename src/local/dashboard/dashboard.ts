import { LoadBalancer } from "../load-balancer/balancer.ts";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { drillDefaults } from "../../drills/harness.ts";
import { assertRunsOn, concludeVerdict } from "../../drills/module.ts";
import { drills, findDrill } from "../../drills/registry.ts";
import { saveReport } from "../../drills/report-files.ts";
import type { StayupError } from "../../shared/errors.ts";
import { StackClient } from "../control-plane/client.ts";
import type { StackStateFile } from "../control-plane/state-file.ts";
import type { LocalStack } from "../runtime.ts";
import { SingleInstanceLocalStack } from "../single-instance/stack.ts";
import type { StableAddress } from "../single-instance/stable-address.ts";
import { dashboardPage } from "./page.ts";
import { TrafficMeter } from "./traffic-meter.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const uplotCss = createRequire(import.meta.url).resolve("uplot/dist/uPlot.min.css");

/** A drill started from the dashboard, as the page shows it. */
export interface DrillRunState {
  drill: string;
  state: "running" | "passed" | "failed" | "error";
  startedAt: string;
  progress: string[];
  /** The report's URL on this dashboard once written. */
  report?: string;
  error?: string;
}

/**
 * The live dashboard of a running stack, served by its control plane under `/dashboard` (so behind
 * the same token, Host and Origin checks). Everything the page loads comes from here: the script
 * (uPlot included) is bundled by esbuild on first request, nothing from a CDN. Live updates are
 * server-sent events; a reconnecting page sends Last-Event-ID and gets the events it missed.
 * It reads the stack through status() and events only; drills run through the control plane.
 */
export class Dashboard {
  readonly meter = new TrafficMeter();
  private readonly streams = new Set<http.ServerResponse>();
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private script?: Promise<string>;
  private drill?: DrillRunState;

  constructor(
    private readonly stack: LocalStack,
    private readonly controlState: () => StackStateFile,
  ) {
    for (const region of [stack.primary, stack.secondary]) {
      // The traffic meter needs the in-process balancer (with workers, each worker answers alone).
      if (region?.loadBalancer instanceof LoadBalancer)
        region.loadBalancer.observer = (answer) => this.meter.record(answer);
    }
    // A single instance has no load balancer: its requests go through the stable address.
    const address = this.stableAddress();
    if (address) address.observer = (answer) => this.meter.record(answer);
    this.unsubscribe = stack.events.subscribe((e) => this.broadcast("stack-event", e, e.seq));
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  /** The single-instance topology's stable address, where its traffic goes through. */
  private stableAddress(): StableAddress | undefined {
    return this.stack instanceof SingleInstanceLocalStack ? this.stack.address : undefined;
  }

  private get reportsDir(): string {
    return path.join(this.stack.options.stateDir, "reports");
  }

  /** Handles a request under /dashboard (already admitted by the control plane). */
  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    const route = `${req.method} ${url.pathname}`;
    if (route === "GET /dashboard" || route === "GET /dashboard/") {
      // Opened with ?token=: the control plane set the cookie; drop the token from the address bar.
      if (url.searchParams.has("token")) {
        res.writeHead(303, { location: "/dashboard" });
        return void res.end();
      }
      return this.send(res, 200, "text/html; charset=utf-8", dashboardPage());
    }
    if (route === "GET /dashboard/app.js") {
      void this.bundle().then(
        (js) => this.send(res, 200, "text/javascript; charset=utf-8", js),
        (error: Error) => this.send(res, 500, "text/plain", error.message),
      );
      return;
    }
    if (route === "GET /dashboard/app.css") {
      const css = [
        readFileSync(uplotCss, "utf8"),
        readFileSync(path.join(here, "client/app.css"), "utf8"),
      ].join("\n");
      return this.send(res, 200, "text/css; charset=utf-8", css);
    }
    if (route === "GET /dashboard/stream") return this.stream(req, res, url);
    if (route === "GET /dashboard/drills") return this.json(res, 200, this.drillsState());
    const start = /^POST \/dashboard\/drills\/([a-z0-9-]+)$/.exec(route);
    if (start) return this.startDrill(start[1] ?? "", res);
    const report = /^GET \/dashboard\/reports\/([\w.-]+\.html)$/.exec(route);
    if (report) {
      const file = path.join(this.reportsDir, report[1] ?? "");
      if (!existsSync(file)) return this.json(res, 404, { error: `no report ${report[1]}` });
      return this.send(res, 200, "text/html; charset=utf-8", readFileSync(file, "utf8"));
    }
    return this.json(res, 404, { error: "not found", routes: ["GET /dashboard", "GET /dashboard/stream"] });
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    this.send(res, status, "application/json", JSON.stringify(body));
  }

  /** The page's script: client/app.ts with uPlot, bundled once per process. */
  private bundle(): Promise<string> {
    this.script ??= build({
      entryPoints: [path.join(here, "client/app.ts")],
      bundle: true,
      write: false,
      format: "iife",
      platform: "browser",
      target: "es2022",
      minify: true,
      legalComments: "none",
      logLevel: "error",
    }).then((r) => r.outputFiles[0]?.text ?? "");
    this.script.catch(() => (this.script = undefined));
    return this.script;
  }

  private stream(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      connection: "keep-alive",
    });
    // A reconnecting EventSource sends the id of the last event it got: resume after it.
    const lastId = Number(req.headers["last-event-id"] ?? url.searchParams.get("since") ?? 0) || 0;
    res.write("retry: 1000\n\n");
    this.write(res, "hello", {
      resumedAfter: lastId,
      traffic: this.meter.history(),
      drills: this.drillsState(),
      status: this.stack.status(),
    });
    for (const e of this.stack.events.recent()) if (e.seq > lastId) this.write(res, "stack-event", e, e.seq);
    this.streams.add(res);
    res.on("close", () => this.streams.delete(res));
  }

  private write(res: http.ServerResponse, event: string, data: unknown, id?: number): void {
    res.write(`event: ${event}\n${id === undefined ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`);
  }

  private broadcast(event: string, data: unknown, id?: number): void {
    for (const res of this.streams) this.write(res, event, data, id);
  }

  private tick(): void {
    if (this.streams.size === 0) {
      this.meter.tick();
      return;
    }
    const samples = this.meter.tick();
    if (samples.length) this.broadcast("traffic", samples);
    this.broadcast("status", this.stack.status());
  }

  private drillsState(): {
    available: { name: string; description: string }[];
    current?: DrillRunState;
    reports: { name: string; url: string; time: string }[];
  } {
    const reports = existsSync(this.reportsDir)
      ? readdirSync(this.reportsDir)
          .filter((f) => f.endsWith(".html"))
          .map((f) => ({
            name: f,
            url: `/dashboard/reports/${f}`,
            time: statSync(path.join(this.reportsDir, f)).mtime.toISOString(),
          }))
          .sort((a, b) => b.time.localeCompare(a.time))
          .slice(0, 20)
      : [];
    return {
      // Only the drills that run on this stack's topology (see each drill's `topologies`).
      available: drills
        .filter((d) => d.topologies[this.stack.options.stack.topology] === true)
        .map((d) => ({ name: d.name, description: d.description })),
      current: this.drill,
      reports,
    };
  }

  /**
   * Runs a drill inside the stack's process, through its own control plane (as the CLI would), one
   * at a time; progress and the report's URL are pushed to every page.
   */
  private startDrill(name: string, res: http.ServerResponse): void {
    const drill = findDrill(name);
    if (!drill)
      return this.json(res, 404, { error: `unknown drill "${name}"`, drills: drills.map((d) => d.name) });
    if (this.drill?.state === "running") {
      return this.json(res, 409, { error: `drill ${this.drill.drill} is still running` });
    }
    try {
      assertRunsOn(drill, this.stack.options.stack.topology);
    } catch (error) {
      return this.json(res, 409, {
        error: (error as StayupError).message,
        hint: (error as StayupError).hint,
      });
    }
    const run: DrillRunState = {
      drill: name,
      state: "running",
      startedAt: new Date().toISOString(),
      progress: [],
    };
    this.drill = run;
    this.json(res, 202, run);
    this.broadcast("drill", run);
    const options = Object.fromEntries(
      (drill.options?.() ?? []).map((o) => [o.attributeName(), o.defaultValue as unknown]),
    );
    void drill
      .run({
        client: new StackClient(this.controlState()),
        stack: this.stack.options.stack,
        rate: drillDefaults.rate,
        onProgress: (message) => {
          run.progress.push(message);
          this.broadcast("drill", run);
        },
        options,
      })
      .then((report) => {
        concludeVerdict(drill, report);
        const files = saveReport(report, this.stack.options.stateDir);
        run.state = report.verdict.passed ? "passed" : "failed";
        run.report = `/dashboard/reports/${path.basename(files.html)}`;
      })
      .catch((error: Error) => {
        run.state = "error";
        run.error = error.message;
      })
      .finally(() => this.broadcast("drill", run));
  }

  close(): void {
    clearInterval(this.timer);
    this.unsubscribe();
    for (const region of [this.stack.primary, this.stack.secondary]) {
      if (region?.loadBalancer instanceof LoadBalancer) region.loadBalancer.observer = undefined;
    }
    const address = this.stableAddress();
    if (address) address.observer = undefined;
    for (const res of this.streams) res.end();
    this.streams.clear();
  }
}
