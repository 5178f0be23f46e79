import { z } from "zod";
import { containerInstanceCapacity, type EcsPlacement, registeredCapacity } from "./ecs-capacity.ts";

/**
 * Seed 004's settings: the service as ECS tasks on EC2 container instances (the environment's web
 * group: its capacity, instance types and scale-in protection) through a capacity provider.
 */

/** Shared by both environments. */
export const ecsSettings = z
  .object({
    /** One task's reservation: CPU units (1024 = 1 vCPU) and memory (hard limit, MiB). */
    task: z
      .object({
        cpuUnits: z
          .number()
          .int()
          .min(128, "must be 128 to 10240 CPU units")
          .max(10240, "must be 128 to 10240"),
        memoryMiB: z.number().int().min(128, "must be 128 MiB or more").max(30720, "at most 30720 MiB"),
      })
      .strict(),
    repository: z
      .object({
        /** Untagged images (superseded layers of a re-pushed tag, failed pushes) expire after this. */
        untaggedExpiryDays: z.number().int().min(1, "must be at least 1 day").max(365, "at most 365 days"),
      })
      .strict(),
  })
  .strict();

/** Per environment (seed 004's dev/prod table). */
export const ecsEnvironmentSettings = z
  .object({
    /** The service's task count: task auto scaling keeps it between min and max. */
    tasks: z
      .object({
        min: z.number().int().min(0, "must be 0 or more"),
        desired: z.number().int().min(0, "must be 0 or more"),
        max: z.number().int().min(1, "must be at least 1").max(1000, "at most 1000"),
      })
      .strict()
      .superRefine((t, ctx) => {
        if (t.desired < t.min || t.desired > t.max)
          ctx.addIssue({
            code: "custom",
            path: ["desired"],
            message: `must be between min (${t.min}) and max (${t.max}), got ${t.desired}`,
          });
      }),
    /**
     * `binpack`: tasks on the fewest container instances, by CPU (cheap: dev).
     * `spread`: over availability zones, then over instances (survives losing one: prod).
     */
    placement: z.enum(["binpack", "spread"], { message: 'must be "binpack" or "spread"' }),
    /** The capacity provider's managed-scaling target: how full ECS keeps the container instances. */
    clusterTargetUtilizationPercent: z
      .number()
      .int()
      .min(1, "must be 1 to 100 (ECS's range)")
      .max(100, "must be 1 to 100 (ECS's range)"),
    /** Images tagged `<env>-…` the repository keeps (older ones expire). */
    taggedImagesKept: z.number().int().min(1, "must be at least 1").max(1000, "at most 1000"),
  })
  .strict();

export type EcsSettings = z.infer<typeof ecsSettings>;
export type EcsEnvironmentSettings = z.infer<typeof ecsEnvironmentSettings>;

/** Checks that a task fits on every instance type of the group; returns the problems. */
export function taskFitProblems(
  task: EcsSettings["task"],
  instanceTypes: string[],
): { index: number; message: string }[] {
  const problems: { index: number; message: string }[] = [];
  instanceTypes.forEach((type, index) => {
    const capacity = registeredCapacity(type);
    if (!capacity) {
      problems.push({
        index,
        message: `the ecs topology needs a known container-instance size; use one of ${Object.keys(containerInstanceCapacity).join(", ")}`,
      });
    } else if (task.cpuUnits > capacity.cpuUnits || task.memoryMiB > capacity.memoryMiB) {
      problems.push({
        index,
        message: `${type} registers ${capacity.cpuUnits} CPU units and ${capacity.memoryMiB} MiB; the task (ecs.task) needs ${task.cpuUnits} and ${task.memoryMiB}`,
      });
    }
  });
  return problems;
}

export {
  containerInstanceCapacity,
  type PlacementStep,
  placementSteps,
  registeredCapacity,
  reservedMemoryFraction,
} from "./ecs-capacity.ts";

// ecs-capacity.ts names the placements without zod: it must name the schema's, no more, no fewer.
const placementNamesMatch: [EcsEnvironmentSettings["placement"]] extends [EcsPlacement]
  ? [EcsPlacement] extends [EcsEnvironmentSettings["placement"]]
    ? true
    : never
  : never = true;
void placementNamesMatch;
