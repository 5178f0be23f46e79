import { rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { writePrivateFileAtomic } from "../../shared/private-file.ts";
import { ecsFaultRoutes, handleEcsFault } from "../ecs/faults.ts";
import { grayFaultRoutes, handleGrayFault } from "../faults/gray-faults.ts";
import { FaultLeaseClosedError } from "../faults/registry.ts";
import { faultRegistryRoutes, handleFaultRegistry } from "../faults/routes.ts";
import { Dashboard } from "../dashboard/dashboard.ts";
import type { LocalStack } from "../runtime.ts";
import { ControlPlaneAccess, newControlToken } from "./access.ts";
import { handleRoll } from "./roll-route.ts";

export interface StackStateFile {
  pid: number;
  controlUrl: string;
  /** Bearer token of the control plane (the file is 0600: only the user can read it). */
  token: string;
  listener: string;
  environment: string;
  startedAt: string;
}

export const stateFileName = "stack.json";

/**
 * A loopback HTTP API over a running stack: `GET /status`, `GET /events` (newline-delimited JSON:
 * recent history, then live), `POST /shutdown`. The CLI and drills use only this. Every request
 * goes through `access` first (token, loopback Host, own Origin).
 */
export class ControlPlaneServer {
  private readonly server: http.Server;
  private readonly streams = new Set<http.ServerResponse>();
  readonly access: ControlPlaneAccess;
  readonly dashboard: Dashboard;
  url = "";

  constructor(
    private readonly stack: LocalStack,
    private readonly onShutdown: () => void,
  ) {
    this.access = new ControlPlaneAccess(
      newControlToken(),
      () => (this.server.address() as AddressInfo).port,
    );
    this.server = http.createServer((req, res) => {
      if (this.access.admit(req, res)) this.handle(req, res);
    });
    this.dashboard = new Dashboard(stack, () => this.state());
  }

  /** The dashboard's address with the token that opens it (the browser then keeps a cookie). */
  get dashboardUrl(): string {
    return `${this.url}/dashboard?token=${this.access.token}`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://control");
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
      res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
      for (const e of this.stack.events.recent()) if (e.seq > since) res.write(`${JSON.stringify(e)}\n`);
      const unsubscribe = this.stack.events.subscribe((e) => res.write(`${JSON.stringify(e)}\n`));
      this.hold(res);
      res.on("close", unsubscribe);
    } else if (req.method === "POST" && url.pathname.startsWith("/faults/")) {
      void this.fault(url, res);
    } else if (req.method === "POST" && url.pathname === "/roll") {
      void handleRoll(this.stack, req, res);
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
            "POST /faults/az-outage?az=",
            "POST /faults/az-restore?az=",
            "POST /faults/region-outage?region=",
            "POST /faults/region-restore?region=",
            ...grayFaultRoutes,
            ...faultRegistryRoutes,
            "POST /roll",
            ...ecsFaultRoutes,
            "POST /shutdown",
          ],
        }),
      );
    }
  }

  /** A response left open (an event stream, a fault lease): ended when the control plane closes. */
  private hold(res: http.ServerResponse): void {
    this.streams.add(res);
    res.on("close", () => this.streams.delete(res));
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
        faults.add(
          {
            id: zoneFault,
            kind: "az-outage",
            region: this.stack.primary.name,
            description: `availability zone ${az} impaired (its instances killed, nothing launches there)`,
          },
          () => group.restoreZone(az),
          lease,
        );
        return reply(200, { az, terminated: lost.map((i) => i.instanceId) });
      }
      if (url.pathname === "/faults/az-restore") {
        group.restoreZone(az);
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
    return {
      pid: process.pid,
      controlUrl: this.url,
      token: this.access.token,
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
    this.dashboard.close();
    for (const res of this.streams) res.end();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
