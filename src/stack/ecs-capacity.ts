/**
 * What ECS can place on a container instance, and the placement strategies in ECS's terms: the
 * parts of seed 004's settings (ecs.ts) that both renderers compute with. Apart from ecs.ts's
 * schema so the local runtime computes them without loading the description's validator (zod):
 * issue 25, item 12.
 */

/** environments.<env>.ecs.placement (ecs.ts's schema). */
export type EcsPlacement = "binpack" | "spread";

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

/** One step of an ECS placement strategy, in ECS's own terms (type and field). */
export type PlacementStep =
  | { type: "binpack"; field: "cpu" | "memory" }
  | { type: "spread"; field: "attribute:ecs.availability-zone" | "instanceId" };

/**
 * The environment's placement as ECS placement strategies: both renderers read this (the task
 * definition on AWS, the local scheduler's placement decision).
 */
export function placementSteps(placement: EcsPlacement): PlacementStep[] {
  return placement === "binpack"
    ? [{ type: "binpack", field: "cpu" }]
    : [
        { type: "spread", field: "attribute:ecs.availability-zone" },
        { type: "spread", field: "instanceId" },
      ];
}
