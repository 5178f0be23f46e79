import type http from "node:http";
import type { FaultCommand, PageFault, RedisFault } from "../../web-service/faults.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher, TimedStackEvent } from "../events/bus.ts";
import type { Instance, InstanceGroupController } from "../instance-group/controller.ts";
import type { LocalStack } from "../runtime.ts";
import { FaultLeaseClosedError } from "./registry.ts";

/**
 * Gray faults: sent to instances over the IPC channel the runtime forked them with, so only the
 * runtime (and through it, the authenticated control plane) can set them. A Redis fault applies to
 * the whole group, instances launched while it lasts included, as a slow network path would.
 */
export class GrayFaultInjector {
  private redisFault: RedisFault = { kind: "none" };

  constructor(
    private readonly group: InstanceGroupController,
    private readonly events: EventPublisher,
  ) {
    const guard = new ControllerGuard({ controller: "gray-faults", events });
    events.subscribe(
      guard.wrap((e: TimedStackEvent) => {
        if (e.type !== "instance.launched" || this.redisFault.kind === "none") return;
        const instance = this.group.list().find((i) => i.instanceId === e.instanceId);
        // An instance without a fault channel simply runs without the fault.
        if (instance) this.group.sendTo(instance.instanceId, { type: "fault", redis: this.redisFault });
      }, "that instance runs without the Redis fault; the next one launched gets it"),
    );
  }

  private send(instance: Instance, command: FaultCommand): void {
    if (!this.group.sendTo(instance.instanceId, command)) {
      throw new FaultInputError(
        `instance "${instance.instanceId}" has no channel for faults (not a local process)`,
      );
    }
  }

  page(instanceId: string, fault: PageFault): Instance {
    const instance = this.group.list().find((i) => i.instanceId === instanceId && i.state !== "terminating");
    if (!instance) throw new FaultInputError(`no running instance "${instanceId}"`);
    this.send(instance, { type: "fault", page: fault });
    this.events.publish({
      type: "fault.injected",
      fault: "page",
      kind: fault.kind,
      instanceIds: [instanceId],
      detail: describe(fault),
    });
    return instance;
  }

  redis(fault: RedisFault): string[] {
    this.redisFault = fault;
    const instances = this.group.list().filter((i) => i.state !== "terminating");
    for (const i of instances) this.send(i, { type: "fault", redis: fault });
    const instanceIds = instances.map((i) => i.instanceId);
    this.events.publish({
      type: "fault.injected",
      fault: "redis",
      kind: fault.kind,
      instanceIds,
      detail: describe(fault),
    });
    return instanceIds;
  }
}

class FaultInputError extends Error {}

function describe(fault: PageFault | RedisFault): string {
  if (fault.kind === "latency") return `+${fault.ms} ms`;
  if (fault.kind === "errors") return `answers ${fault.status ?? 500}`;
  return fault.kind;
}

/** A fault in force, for `stayup status`. */
function inForce(fault: PageFault | RedisFault): string {
  if (fault.kind === "latency") return `answers ${fault.ms} ms late`;
  if (fault.kind === "errors") return `answers ${fault.status ?? 500}`;
  if (fault.kind === "hang") return "commands hang";
  return "never answers";
}

const MAX_LATENCY_MS = 120_000;

function latencyMs(url: URL): number {
  const ms = Number(url.searchParams.get("ms") ?? "");
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_LATENCY_MS) {
    throw new FaultInputError(
      `ms must be an integer from 1 to ${MAX_LATENCY_MS}, got "${url.searchParams.get("ms") ?? ""}"`,
    );
  }
  return ms;
}

export function parsePageFault(url: URL): PageFault {
  const kind = url.searchParams.get("kind") ?? "";
  if (kind === "none" || kind === "stall") return { kind };
  if (kind === "latency") return { kind, ms: latencyMs(url) };
  if (kind === "errors") {
    const status = Number(url.searchParams.get("status") ?? 500);
    if (!Number.isInteger(status) || status < 500 || status > 599) {
      throw new FaultInputError(`status must be a 5xx code, got "${url.searchParams.get("status")}"`);
    }
    return { kind, status };
  }
  throw new FaultInputError(`kind must be one of errors, latency, stall, none; got "${kind}"`);
}

export function parseRedisFault(url: URL): RedisFault {
  const kind = url.searchParams.get("kind") ?? "";
  if (kind === "none" || kind === "hang") return { kind };
  if (kind === "latency") return { kind, ms: latencyMs(url) };
  throw new FaultInputError(`kind must be one of latency, hang, none; got "${kind}"`);
}

const injectors = new WeakMap<InstanceGroupController, GrayFaultInjector>();

export const grayFaultRoutes = [
  "POST /faults/instance?instance=&kind=errors|latency|stall|none[&ms=][&status=][&region=]",
  "POST /faults/redis?kind=latency|hang|none[&ms=][&region=]",
];

/**
 * Control-plane routes for gray faults. Returns false when the request is not one of them.
 */
export function handleGrayFault(
  stack: LocalStack,
  req: http.IncomingMessage,
  url: URL,
  res: http.ServerResponse,
): boolean {
  if (req.method !== "POST" || (url.pathname !== "/faults/instance" && url.pathname !== "/faults/redis")) {
    return false;
  }
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  try {
    const regionName = url.searchParams.get("region");
    const region = regionName ? stack.region(regionName) : stack.primary;
    if (!region) {
      reply(400, { error: `unknown region "${regionName}"` });
      return true;
    }
    const group = region.group;
    let injector = injectors.get(group);
    if (!injector) {
      injector = new GrayFaultInjector(group, stack.events.scoped(region.name));
      injectors.set(group, injector);
    }
    // Every fault but "none" is in force until cleared: by the drill, `stayup faults clear`, or the
    // stack itself when the drill's lease (if given) lapses.
    const lease = url.searchParams.get("lease") ?? undefined;
    const faults = stack.faults;
    const active = injector;
    if (url.pathname === "/faults/instance") {
      const fault = parsePageFault(url);
      if (fault.kind !== "none") faults.assertOpen(lease);
      const instance = injector.page(url.searchParams.get("instance") ?? "", fault);
      const id = `instance:${region.name}:${instance.instanceId}`;
      if (fault.kind === "none") faults.forget(id);
      else {
        faults.add(
          {
            id,
            kind: "instance",
            region: region.name,
            description: `instance ${instance.instanceId} in ${instance.az}: GET / ${inForce(fault)} (its /health passes)`,
          },
          () => {
            // An instance gone meanwhile took its fault with it.
            if (group.list().some((i) => i.instanceId === instance.instanceId && i.state !== "terminating")) {
              active.page(instance.instanceId, { kind: "none" });
            }
          },
          lease,
        );
      }
      reply(200, { instance: instance.instanceId, az: instance.az, fault });
    } else {
      const fault = parseRedisFault(url);
      if (fault.kind !== "none") faults.assertOpen(lease);
      const instances = injector.redis(fault);
      const id = `redis:${region.name}`;
      if (fault.kind === "none") faults.forget(id);
      else {
        faults.add(
          {
            id,
            kind: "redis",
            region: region.name,
            description: `every instance's path to Redis in ${region.name}: ${fault.kind === "latency" ? `+${fault.ms} ms per command` : inForce(fault)}`,
          },
          () => void active.redis({ kind: "none" }),
          lease,
        );
      }
      reply(200, { instances, fault });
    }
  } catch (error) {
    const status =
      error instanceof FaultInputError ? 400 : error instanceof FaultLeaseClosedError ? 409 : 500;
    reply(status, { error: (error as Error).message });
  }
  return true;
}
