import { existsSync, readFileSync } from "node:fs";
import type http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { buildThenStop } from "../../shared/esbuild.ts";
import { contentSecurityPolicy, sameToken } from "../control-plane/access.ts";
import { type DrillDesk, reportsDirOf } from "../control-plane/drills.ts";
import type { LiveStream, StreamGate } from "../control-plane/streams.ts";
import type { LocalStack } from "../runtime.ts";
import { SingleInstanceLocalStack } from "../single-instance/stack.ts";
import type { StableAddress } from "../single-instance/stable-address.ts";
import { dashboardPage } from "./page.ts";
import { TrafficMeter } from "./traffic-meter.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const uplotCss = createRequire(import.meta.url).resolve("uplot/dist/uPlot.min.css");

/** One server-sent event. */
const sse = (event: string, data: unknown, id?: number) =>
  `event: ${event}\n${id === undefined ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`;

/** The page's traffic chart shows this many seconds (one sample a second each). */
const trafficWindowSamples = 300;

/** How long a report's one-time ticket may wait to be used. */
const reportTicketTtlMs = 60_000;

/**
 * The live dashboard of a running stack, served by its control plane under `/dashboard` (so behind
 * the same token, Host and Origin checks). Everything the page loads comes from here: the script
 * (uPlot included) is bundled by esbuild on first request, nothing from a CDN. The shell, script
 * and style are public (they hold nothing of the stack); the script takes the token from the URL's
 * fragment and sends it as a header with every request for data. Live updates are server-sent
 * events; a reconnecting page sends Last-Event-ID and gets the events it missed. It reads the stack
 * through status() and events only; drills run through the control plane's DrillDesk.
 */
export class Dashboard {
  readonly meter = new TrafficMeter();
  private readonly streams = new Set<LiveStream>();
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: (() => void)[];
  private script?: Promise<string>;
  /** One-time tickets that open a report in a new tab (which cannot send the token): ticket → file. */
  private readonly reportTickets = new Map<string, { file: string; expires: number }>();

  constructor(
    private readonly stack: LocalStack,
    private readonly drills: DrillDesk,
    private readonly gate: StreamGate,
  ) {
    for (const region of [stack.primary, stack.secondary]) {
      // In-process or as workers (which send their answers to this process in batches).
      if (region?.loadBalancer) region.loadBalancer.observer = (answer) => this.meter.record(answer);
    }
    // A single instance has no load balancer: its requests go through the stable address.
    const address = this.stableAddress();
    if (address) address.observer = (answer) => this.meter.record(answer);
    this.unsubscribe = [
      stack.events.subscribe((e) => this.broadcast("stack-event", e, e.seq)),
      drills.onChange((run) => this.broadcastLatest("drill", run)),
    ];
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  /** The single-instance topology's stable address, where its traffic goes through. */
  private stableAddress(): StableAddress | undefined {
    return this.stack instanceof SingleInstanceLocalStack ? this.stack.address : undefined;
  }

  /** Handles a request under /dashboard (already admitted by the control plane). */
  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    const route = `${req.method} ${url.pathname}`;
    if (route === "GET /dashboard" || route === "GET /dashboard/") {
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
    const ticket = /^POST \/dashboard\/reports\/([\w.-]+\.html)\/ticket$/.exec(route);
    if (ticket) return this.reportTicket(ticket[1] ?? "", res);
    const report = /^GET \/dashboard\/reports\/([\w.-]+\.html)$/.exec(route);
    if (report) return this.report(report[1] ?? "", url, res);
    return this.json(res, 404, { error: "not found", routes: ["GET /dashboard", "GET /dashboard/stream"] });
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    this.send(res, status, "application/json", JSON.stringify(body));
  }

  /** A one-time URL for a report (the page asked with the token): valid once, for a minute. */
  private reportTicket(file: string, res: http.ServerResponse): void {
    if (!existsSync(path.join(reportsDirOf(this.stack.options.stateDir), file)))
      return this.json(res, 404, { error: `no report ${file}` });
    const now = Date.now();
    for (const [t, v] of this.reportTickets) if (v.expires < now) this.reportTickets.delete(t);
    const ticket = randomBytes(24).toString("base64url");
    this.reportTickets.set(ticket, { file, expires: now + reportTicketTtlMs });
    this.json(res, 200, { url: `/dashboard/reports/${file}?ticket=${ticket}` });
  }

  /**
   * A drill report: with the token (an API client), or a ticket the page got (a new tab). The
   * report's inline script and style are allowed by their hashes, nothing else inline.
   */
  private report(file: string, url: URL, res: http.ServerResponse): void {
    const given = url.searchParams.get("ticket");
    if (given !== null) {
      const entry = [...this.reportTickets].find(([t]) => sameToken(given, t));
      if (entry) this.reportTickets.delete(entry[0]);
      if (!entry || entry[1].file !== file || entry[1].expires < Date.now()) {
        return this.json(res, 401, {
          error: "unauthorized",
          reason: "this report link was for one opening: open the report again from the dashboard",
        });
      }
    }
    const full = path.join(reportsDirOf(this.stack.options.stateDir), file);
    if (!existsSync(full)) return this.json(res, 404, { error: `no report ${file}` });
    const html = readFileSync(full, "utf8");
    const inline = (tag: string) =>
      [...html.matchAll(new RegExp(`<${tag}(?![^>]*\\ssrc=)[^>]*>([\\s\\S]*?)</${tag}>`, "g"))].map(
        (m) => m[1] ?? "",
      );
    res.setHeader(
      "content-security-policy",
      contentSecurityPolicy({ scripts: inline("script"), styles: inline("style") }),
    );
    return this.send(res, 200, "text/html; charset=utf-8", html);
  }

  /** The page's script: client/app.ts with uPlot, bundled once per process. */
  private bundle(): Promise<string> {
    // The service process esbuild starts is stopped after: a dashboard viewed once is not 90 MB more.
    this.script ??= buildThenStop({
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
    let stream: LiveStream | undefined = undefined;
    stream = this.gate.open(
      res,
      { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" },
      () => {
        if (stream) this.streams.delete(stream);
      },
    );
    if (!stream) return;
    // A reconnecting page sends the id of the last event it got: resume after it.
    const lastId = Number(req.headers["last-event-id"] ?? url.searchParams.get("since") ?? 0) || 0;
    stream.replay("retry: 1000\n\n");
    stream.replay(
      sse("hello", {
        resumedAfter: lastId,
        traffic: this.meter.history(),
        drills: this.drills.state(),
        status: this.stack.status(),
      }),
    );
    for (const e of this.stack.events.recent())
      if (e.seq > lastId) stream.replay(sse("stack-event", e, e.seq));
    if (stream.open) this.streams.add(stream);
  }

  private broadcast(event: string, data: unknown, id?: number): void {
    const chunk = sse(event, data, id);
    for (const stream of this.streams) stream.write(chunk);
  }

  /**
   * A snapshot (the next supersedes it): a client that is not reading gets only the latest, once
   * it reads again; with `merge`, the held one and the new one merged.
   */
  private broadcastLatest<T>(event: string, data: T, merge?: (held: T, next: T) => T): void {
    const chunk = sse(event, data);
    for (const stream of this.streams)
      stream.writeLatest(event, data, (d) => (d === data ? chunk : sse(event, d)), merge);
  }

  private tick(): void {
    if (this.streams.size === 0) {
      this.meter.tick();
      return;
    }
    const samples = this.meter.tick();
    // Traffic samples add up: a client that is not reading gets those it missed (the chart's
    // window at most) in one event once it reads again.
    if (samples.length)
      this.broadcastLatest("traffic", samples, (held, next) =>
        [...held, ...next].slice(-trafficWindowSamples),
      );
    this.broadcastLatest("status", this.stack.status());
  }

  close(): void {
    clearInterval(this.timer);
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    for (const region of [this.stack.primary, this.stack.secondary]) {
      if (region?.loadBalancer) region.loadBalancer.observer = undefined;
    }
    const address = this.stableAddress();
    if (address) address.observer = undefined;
    for (const stream of this.streams) stream.res.end();
    this.streams.clear();
  }
}
