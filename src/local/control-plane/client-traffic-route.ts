import type http from "node:http";
import { z } from "zod";
import {
  CLIENT_TRAFFIC_MAX_SECONDS_PER_REPORT,
  type ClientTrafficEvent,
  type EventBus,
} from "../events/bus.ts";
import { defaultBodyDeadlineMs, readBoundedBody, refuseBody } from "./body.ts";

/** A report holds a few seconds (more only after the control plane did not answer for a while). */
const clientTrafficBodyLimitBytes = 64 * 1024;

const count = z.number().int().nonnegative();
const clientTrafficBody = z
  .object({
    client: z.string().min(1).max(100),
    clientId: z.string().min(1).max(100),
    seconds: z
      .array(
        z
          .object({
            secondStartMs: count,
            ok: count,
            failed: count,
            refused: count,
            timedOut: count,
          })
          .strict()
          .refine((s) => s.refused + s.timedOut <= s.failed, {
            message: "refused and timedOut are parts of failed",
          }),
      )
      .max(CLIENT_TRAFFIC_MAX_SECONDS_PER_REPORT),
    final: z.boolean().default(false),
  })
  .strict();

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
