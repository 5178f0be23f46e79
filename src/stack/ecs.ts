import { z } from "zod";

/**
 * Seed 004's settings: the service as ECS tasks on EC2 container instances (the environment's web
 * group: its capacity, instance types and scale-in protection) through a capacity provider.
 */

/** CPU units (1024 per vCPU) and memory of the instance types a container instance may be. */
export const containerInstanceCapacity: Record<string, { cpuUnits: number; memoryMiB: number }> = {
  "t3.micro": { cpuUnits: 2048, memoryMiB: 1024 },
  "t3a.micro": { cpuUnits: 2048, memoryMiB: 1024 },
  "t3.small": { cpuUnits: 2048, memoryMiB: 2048 },
  "t3a.small": { cpuUnits: 2048, memoryMiB: 2048 },
  "t3.medium": { cpuUnits: 2048, memoryMiB: 4096 },
  "t3a.medium": { cpuUnits: 2048, memoryMiB: 4096 },
  "t3.large": { cpuUnits: 2048, memoryMiB: 8192 },
  "t3a.large": { cpuUnits: 2048, memoryMiB: 8192 },
  "m6i.large": { cpuUnits: 2048, memoryMiB: 8192 },
  "m7i.large": { cpuUnits: 2048, memoryMiB: 8192 },
  "c6i.large": { cpuUnits: 2048, memoryMiB: 4096 },
  "c7i.large": { cpuUnits: 2048, memoryMiB: 4096 },
};

/**
 * Memory the ECS agent and the OS keep on a container instance (what ECS does not register for
 * tasks): about 10 % on the ECS-optimized AMI, so a task sized to the whole instance never fits.
 */
export const reservedMemoryFraction = 0.1;

/** What ECS can place on one container instance of this type. */
export function registeredCapacity(
  instanceType: string,
): { cpuUnits: number; memoryMiB: number } | undefined {
  const c = containerInstanceCapacity[instanceType];
  if (!c) return undefined;
  return { cpuUnits: c.cpuUnits, memoryMiB: Math.floor(c.memoryMiB * (1 - reservedMemoryFraction)) };
}

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

/** One step of an ECS placement strategy, in ECS's own terms (type and field). */
export type PlacementStep =
  | { type: "binpack"; field: "cpu" | "memory" }
  | { type: "spread"; field: "attribute:ecs.availability-zone" | "instanceId" };

/**
 * The environment's placement as ECS placement strategies: both renderers read this (the task
 * definition on AWS, the local scheduler's placement decision).
 */
export function placementSteps(placement: EcsEnvironmentSettings["placement"]): PlacementStep[] {
  return placement === "binpack"
    ? [{ type: "binpack", field: "cpu" }]
    : [
        { type: "spread", field: "attribute:ecs.availability-zone" },
        { type: "spread", field: "instanceId" },
      ];
}
