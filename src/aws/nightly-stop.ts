import * as autoscaling from "aws-cdk-lib/aws-autoscaling";
import { type NightlyStop, nightlyStopCron } from "../stack/nightly-stop.ts";

/**
 * Seed 003's "turn off your dev env at night" as two scheduled actions on any group: to 0 at
 * `stopAt`, back to `capacity` at `startAt`. Max goes to 0 too, so target tracking cannot scale the
 * group back out overnight. Without `desired` (a standby group whose desired capacity belongs to the
 * failover Lambdas) the start action restores min and max only; the group rises to min by itself.
 */
export function addNightlyStop(
  group: autoscaling.AutoScalingGroup,
  nightlyStop: NightlyStop | undefined,
  capacity: { min: number; desired?: number; max: number },
): void {
  if (!nightlyStop) return;
  const cron = nightlyStopCron(nightlyStop);
  group.scaleOnSchedule("NightlyStop", {
    schedule: autoscaling.Schedule.cron(cron.stop),
    timeZone: nightlyStop.timeZone,
    minCapacity: 0,
    desiredCapacity: 0,
    maxCapacity: 0,
  });
  group.scaleOnSchedule("MorningStart", {
    schedule: autoscaling.Schedule.cron(cron.start),
    timeZone: nightlyStop.timeZone,
    minCapacity: capacity.min,
    desiredCapacity: capacity.desired,
    maxCapacity: capacity.max,
  });
}
