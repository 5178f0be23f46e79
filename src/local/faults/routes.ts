import type http from "node:http";
import type { LocalStack } from "../runtime.ts";
import { clearFaultsCommand } from "./registry.ts";

export const faultRegistryRoutes = [
  "GET /faults",
  "GET /faults/lease?drill=&pid= (held open: its faults are cleared when it closes)",
  "POST /faults/clear[?lease=]",
];

/**
 * The control-plane routes over the faults in force: list them, clear them (all, or one lease's),
 * and hold a lease. Returns false when the request is not one of them. `hold` keeps an open
 * response so that the control plane ends it when it closes.
 */
export function handleFaultRegistry(
  stack: LocalStack,
  req: http.IncomingMessage,
  url: URL,
  res: http.ServerResponse,
  hold: (res: http.ServerResponse) => void,
): boolean {
  const route = `${req.method} ${url.pathname}`;
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (route === "GET /faults") {
    reply(200, { faults: stack.faults.list(), clear: clearFaultsCommand });
    return true;
  }
  if (route === "GET /faults/lease") {
    const pid = Number(url.searchParams.get("pid") ?? "");
    const lease = stack.faults.openLease({
      drill: url.searchParams.get("drill") ?? undefined,
      pid: Number.isInteger(pid) && pid > 0 ? pid : undefined,
    });
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    res.write(`${JSON.stringify({ lease })}\n`);
    hold(res);
    // The drill's process ended (however: the kernel closes its connection) or it let go.
    res.on("close", () => {
      void stack.faults.closeLease(lease, "the drill holding it ended or was interrupted");
    });
    return true;
  }
  if (route === "POST /faults/clear") {
    const lease = url.searchParams.get("lease");
    const cleared = lease
      ? stack.faults.closeLease(lease, "its drill ended or was interrupted")
      : stack.faults.clear(`\`${clearFaultsCommand}\``);
    void cleared.then(
      (faults) => reply(200, { cleared: faults, inForce: stack.faults.list() }),
      (error: Error) => reply(500, { error: error.message }),
    );
    return true;
  }
  return false;
}
