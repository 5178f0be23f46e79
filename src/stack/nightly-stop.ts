import { z } from "zod";

const clockTime = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a 24-hour time "HH:MM" such as "20:00"');

const isTimeZone = (name: string): boolean => {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return true;
  } catch {
    return false;
  }
};

/**
 * Seed 003's cost practice: turn the environment off at night. The group goes to 0 at `stopAt` and
 * back to its capacity at `startAt`, in `timeZone` (so daylight saving time moves with it). With
 * `days: "weekdays"` it stops Monday to Friday evenings and starts Monday to Friday mornings, so it
 * stays off over the weekend.
 */
export const nightlyStopSchema = z
  .object({
    stopAt: clockTime,
    startAt: clockTime,
    timeZone: z.string().refine(isTimeZone, 'must be an IANA time zone such as "Europe/Paris" or "UTC"'),
    days: z.enum(["every-day", "weekdays"], { message: 'must be "every-day" or "weekdays"' }),
  })
  .strict()
  .refine((n) => n.stopAt !== n.startAt, {
    path: ["startAt"],
    message: "must differ from stopAt (the group would stop and start at the same minute)",
  });

export type NightlyStop = z.output<typeof nightlyStopSchema>;

/** The two times as cron fields (minute, hour, week day) for a scheduler that reads cron. */
export function nightlyStopCron(n: NightlyStop): {
  stop: { minute: string; hour: string; weekDay: string };
  start: { minute: string; hour: string; weekDay: string };
} {
  const weekDay = n.days === "weekdays" ? "MON-FRI" : "*";
  const at = (hhmm: string) => {
    const [hour, minute] = hhmm.split(":").map(Number);
    return { minute: String(minute), hour: String(hour), weekDay };
  };
  return { stop: at(n.stopAt), start: at(n.startAt) };
}
