import { rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { writePrivateFileAtomic } from "../../shared/private-file.ts";
import { processStartOf } from "../../shared/process-info.ts";
import { ecsFaultRoutes, handleEcsFault } from "../ecs/faults.ts";
import { grayFaultRoutes, handleGrayFault } from "../faults/gray-faults.ts";
import { FaultLeaseClosedError } from "../faults/registry.ts";
import { faultRegistryRoutes, handleFaultRegistry } from "../faults/routes.ts";
import { Dashboard } from "../dashboard/dashboard.ts";
import { RedisReplicationController } from "../redis/replication.ts";
import type { LocalStack } from "../runtime.ts";
import { clearOldTokenCookies, ControlPlaneAccess, newControlToken, setSecurityHeaders } from "./access.ts";
import { StackClient } from "./client.ts";
import { DrillDesk, type DrillRunner } from "./drills.ts";
import { handleClientTraffic } from "./client-traffic-route.ts";
import { handleRoll, handleRollStop, RollDesk } from "./roll-route.ts";
import { type StackStateFile, stateFileName } from "./state-file.ts";
import { defaultStreamLimits, type StreamLimits, StreamGate } from "./streams.ts";

export interface ControlPlaneOptions {
  /** How drills run (`GET /drills`, `POST /drills/<name>`): given by the CLI, which knows them. */
  drills?: DrillRunner;
  streams?: Partial<StreamLimits>;
  /** How long a route that reads a body (`POST /roll`) waits for all of it: 408 after. */
  bodyDeadlineMs?: number;
}

/**
 * A loopback HTTP API over a running stack: `GET /status`, `GET /events` (newline-delimited JSON:
 * recent history, then live), `GET /drills`, `POST /drills/<name>`, `POST /client-traffic` (what a
 * drill's client saw, published as events), `POST /roll` and `POST /roll/stop` (roll-route.ts),
 * `POST /shutdown`. The CLI and
 * drills use only this. Every request goes through `access` first (token, loopback Host, own
 * Origin); every answer carries the security headers (CSP, no framing, no Referer, nosniff).
 */
export class ControlPlaneServer {
  private readonly server: http.Server;
  readonly access: ControlPlaneAccess;
  readonly dashboard: Dashboard;
  readonly drills: DrillDesk;
  /** The roll under way (`POST /roll`), and what stops it (`POST /roll/stop`). */
  readonly rolls = new RollDesk();
  /** `/events` and the dashboard's stream: capped in number and in what each may hold. */
  readonly streams: StreamGate;
  /** Fault leases held open (their drill's connection): ended when the control plane closes. */
  private readonly held = new Set<http.ServerResponse>();
  url = "";

  constructor(
    private readonly stack: LocalStack,
    private readonly onShutdown: () => void,
    private readonly options: ControlPlaneOptions = {},
  ) {
    this.access = new ControlPlaneAccess(
      newControlToken(),
      () => (this.server.address() as AddressInfo).port,
    );
    // Node's own deadlines for a request's head and whole request (a route that reads a body has
    // its own, shorter, body.ts); a stream's answer is not bounded by them, only its request.
    this.server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
      setSecurityHeaders(res);
      clearOldTokenCookies(req, res);
      if (this.access.admit(req, res)) this.handle(req, res);
    });
    this.streams = new StreamGate({ ...defaultStreamLimits, ...options.streams });
    this.drills = new DrillDesk(
      options.drills,
      stack.options.stack,
      stack.options.stateDir,
      () => new StackClient(this.state()),
    );
    this.dashboard = new Dashboard(stack, this.drills, this.streams);
  }

  /**
   * The dashboard's address with the token that opens it, in the fragment: a browser never sends
   * a fragment to a server; the page's script takes it, drops it from the address bar and sends it
   * only to this server, as a header.
   */
  get dashboardUrl(): string {
    return `${this.url}/dashboard#token=${this.access.token}`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://control");
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (handleFaultRegistry(this.stack, req, url, res, (held) => this.hold(held))) return;
    if (handleGrayFault(this.stack, req, url, res)) return;
    if (handleEcsFault(this.stack, req, url, res)) return;
    if (url.pathname === "/dashboard" || url.pathname.startsWith("/dashboard/")) {
      this.dashboard.handle(req, res, url);
    } else if (req.method === "GET" && url.pathname === "/status") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          ...this.stack.status(),
          faults: this.stack.faults.list(),
          dashboard: this.dashboardUrl,
        }),
      );
    } else if (req.method === "GET" && url.pathname === "/events") {
      const since = Number(url.searchParams.get("since") ?? 0);
      let unsubscribe: () => void = () => undefined;
      const stream = this.streams.open(
        res,
        { "content-type": "application/x-ndjson", "cache-control": "no-store" },
        () => unsubscribe(),
      );
      if (!stream) return;
      for (const e of this.stack.events.recent()) if (e.seq > since) stream.replay(`${JSON.stringify(e)}\n`);
      if (stream.open)
        unsubscribe = this.stack.events.subscribe((e) => stream.write(`${JSON.stringify(e)}\n`));
    } else if (req.method === "GET" && url.pathname === "/drills") {
      reply(200, this.drills.state());
    } else if (req.method === "POST" && /^\/drills\/[a-z0-9-]+$/.test(url.pathname)) {
      const started = this.drills.start(url.pathname.slice("/drills/".length));
      reply(started.status, started.body);
    } else if (req.method === "POST" && url.pathname.startsWith("/faults/")) {
      void this.fault(url, res);
    } else if (req.method === "POST" && url.pathname === "/client-traffic") {
      void handleClientTraffic(this.stack.events, req, res, this.options.bodyDeadlineMs);
    } else if (req.method === "POST" && url.pathname === "/roll") {
      void handleRoll(this.stack, this.rolls, req, res, this.options.bodyDeadlineMs);
    } else if (req.method === "POST" && url.pathname === "/roll/stop") {
      void handleRollStop(this.rolls, url, res);
    } else if (req.method === "POST" && url.pathname === "/shutdown") {
      res.writeHead(202, { "content-type": "application/json" });
      res.end(JSON.stringify({ stopping: true }));
      this.onShutdown();
    } else {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          error: "not found",
          routes: [
            "GET /status",
            "GET /events",
            "GET /drills",
            "POST /drills/<name>",
            "POST /faults/az-outage?az=",
            "POST /faults/az-restore?az=",
            "POST /faults/region-outage?region=",
            "POST /faults/region-restore?region=",
            ...grayFaultRoutes,
            ...faultRegistryRoutes,
            "POST /roll",
            "POST /roll/stop?id=&reason=",
            "POST /client-traffic",
            ...ecsFaultRoutes,
            "POST /shutdown",
          ],
        }),
      );
    }
  }

  /** A response left open (an event stream, a fault lease): ended when the control plane closes. */
  private hold(res: http.ServerResponse): void {
    this.held.add(res);
    res.on("close", () => this.held.delete(res));
  }

  /** Faults the drills inject: each maps to what the controllers would see from a real outage. */
  private async fault(url: URL, res: http.ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    try {
      const az = url.searchParams.get("az") ?? "";
      // Under a drill's lease (if given): cleared by the stack when the drill is gone.
      const lease = url.searchParams.get("lease") ?? undefined;
      const faults = this.stack.faults;
      const group = this.stack.group;
      if (!group) return reply(409, { error: "the stack is not started" });
      // A zone holds a Redis node only with Multi-AZ replication (one node otherwise, in no zone).
      const redis = this.stack.redis instanceof RedisReplicationController ? this.stack.redis : undefined;
      if (url.pathname === "/faults/az-outage" || url.pathname === "/faults/az-restore") {
        if (!group.availabilityZones.includes(az)) {
          return reply(400, { error: `unknown az "${az}"`, availabilityZones: group.availabilityZones });
        }
      }
      if (url.pathname === "/faults/region-outage" || url.pathname === "/faults/region-restore") {
        const name = url.searchParams.get("region") ?? "";
        const region = this.stack.region(name);
        if (!region) return reply(400, { error: `unknown region "${name}"` });
        const id = `region-outage:${name}`;
        if (url.pathname === "/faults/region-outage") {
          faults.assertOpen(lease);
          await region.fail();
          faults.add(
            {
              id,
              kind: "region-outage",
              region: name,
              description: `region ${name} down (its load balancer and instances)`,
            },
            () => region.restore(),
            lease,
          );
        } else {
          await region.restore();
          faults.forget(id);
        }
        return reply(200, { region: name, down: region.down });
      }
      const zoneFault = `az-outage:${this.stack.primary.name}:${az}`;
      if (url.pathname === "/faults/az-outage") {
        faults.assertOpen(lease);
        const lost = group.impairZone(az);
        const redisStopped = redis?.impairZone(az) ?? [];
        faults.add(
          {
            id: zoneFault,
            kind: "az-outage",
            region: this.stack.primary.name,
            description: `availability zone ${az} impaired (its instances killed${redisStopped.length ? `, its Redis ${redisStopped.map((n) => n.role).join(" and ")} out of reach` : ""}, nothing launches there)`,
          },
          () => {
            group.restoreZone(az);
            redis?.restoreZone(az);
          },
          lease,
        );
        return reply(200, { az, terminated: lost.map((i) => i.instanceId), redisNodesStopped: redisStopped });
      }
      if (url.pathname === "/faults/az-restore") {
        group.restoreZone(az);
        redis?.restoreZone(az);
        faults.forget(zoneFault);
        return reply(200, { az, restored: true });
      }
      return reply(404, { error: `unknown fault ${url.pathname}` });
    } catch (error) {
      if (error instanceof FaultLeaseClosedError) return reply(409, { error: error.message });
      return reply(500, { error: (error as Error).message });
    }
  }

  listen(): Promise<string> {
    return new Promise((resolve) => {
      this.server.listen({ host: "127.0.0.1", port: 0 }, () => {
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
        resolve(this.url);
      });
    });
  }

  /** What a client needs to reach this control plane. */
  state(): StackStateFile {
    const processStart = processStartOf(process.pid);
    return {
      pid: process.pid,
      ...(processStart ? { processStart } : {}),
      controlUrl: this.url,
      token: this.access.token,
      loadSecret: this.stack.loadSecret,
      listener: this.stack.loadBalancer.url,
      environment: this.stack.options.stack.environment,
      startedAt: new Date().toISOString(),
    };
  }

  /** The state file: atomic, 0600 (it holds the token). */
  writeStateFile(stateDir: string): void {
    writePrivateFileAtomic(path.join(stateDir, stateFileName), `${JSON.stringify(this.state(), null, 2)}\n`);
  }

  removeStateFile(stateDir: string): void {
    rmSync(path.join(stateDir, stateFileName), { force: true });
  }

  close(): Promise<void> {
    // A roll's request is held until the roll ends (minutes): stopped and answered now.
    this.rolls.close("the control plane is closing");
    this.dashboard.close();
    this.streams.closeAll();
    for (const res of this.held) res.end();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
