import type http from "node:http";
import type { LocalStack } from "../runtime.ts";
import { EcsLocalStack } from "./stack.ts";

export const ecsFaultRoutes = ["POST /faults/lose-container-instance?containerInstance="];

/**
 * The control-plane route that loses one container instance (and so every task on it). Returns
 * false when the request is not this route.
 */
export function handleEcsFault(
  stack: LocalStack,
  req: http.IncomingMessage,
  url: URL,
  res: http.ServerResponse,
): boolean {
  if (req.method !== "POST" || url.pathname !== "/faults/lose-container-instance") return false;
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (!(stack instanceof EcsLocalStack)) {
    reply(409, { error: 'container instances exist only in topology "ecs"' });
    return true;
  }
  const id = url.searchParams.get("containerInstance") ?? "";
  const active = stack.containerInstances.active().map((c) => c.containerInstanceId);
  if (!active.includes(id)) {
    reply(400, { error: `no active container instance "${id}"`, containerInstances: active });
    return true;
  }
  try {
    reply(200, stack.loseContainerInstance(id));
  } catch (error) {
    reply(500, { error: (error as Error).message });
  }
  return true;
}
