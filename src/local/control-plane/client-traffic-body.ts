import { z } from "zod";
import { CLIENT_TRAFFIC_MAX_SECONDS_PER_REPORT } from "../events/bus.ts";

/** POST /client-traffic's body (client-traffic-route.ts), loaded only when a report comes. */
const count = z.number().int().nonnegative();
export const clientTrafficBody = z
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
