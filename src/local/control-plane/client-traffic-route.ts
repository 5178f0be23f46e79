import type http from "node:http";
import type { ClientTrafficEvent, EventBus } from "../events/bus.ts";
import { defaultBodyDeadlineMs, readBoundedBody, refuseBody } from "./body.ts";

/** A report holds a few seconds (more only after the control plane did not answer for a while). */
const clientTrafficBodyLimitBytes = 64 * 1024;

/**
 * POST /client-traffic: a client of the stack (a drill's traffic) reports what it saw, per second,
 * and the control plane publishes it as a `client.traffic` event, so the dashboard counts failures
 * where they happen: a connection refused because a region is down never reaches a balancer.
 * Answers 202 with the event's seq; 400 with the field path and a fix for a malformed body.
 */
export async function handleClientTraffic(
  events: EventBus,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  bodyDeadlineMs = defaultBodyDeadlineMs,
): Promise<void> {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const read = await readBoundedBody(req, {
    limitBytes: clientTrafficBodyLimitBytes,
    deadlineMs: bodyDeadlineMs,
  });
  if (!read.ok) return refuseBody(res, read);
  let json: unknown;
  try {
    json = JSON.parse(read.text);
  } catch {
    return reply(400, {
      error: "the body is not JSON",
      fix: 'send {"client": "...", "clientId": "...", "seconds": [{"secondStartMs": 0, "ok": 0, "failed": 0, "refused": 0, "timedOut": 0}], "final": false}',
    });
  }
  // Its validator (zod) is loaded by the first report, during a drill: the runtime at rest holds
  // none of it (issue 25, item 12).
  const { clientTrafficBody } = await import("./client-traffic-body.ts");
  const parsed = clientTrafficBody.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join(".") || "(body)";
    return reply(400, {
      error: `${field}: ${issue?.message ?? "invalid"}`,
      fix: "counts are whole numbers ≥ 0, refused + timedOut ≤ failed, client and clientId 1 to 100 characters",
    });
  }
  const published = events.publish({ type: "client.traffic", ...parsed.data } satisfies ClientTrafficEvent);
  return reply(202, { seq: published.seq });
}
