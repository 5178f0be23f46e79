import type { PlacementStep } from "./ecs.ts";

/**
 * How ECS places tasks on container instances (placement strategies) and how many instances its
 * capacity provider's managed scaling wants: a model of AWS's behaviour that both renderers use (the
 * local ECS controllers decide with it; the cost estimate counts the instances AWS would run).
 */

export interface ContainerInstanceState {
  id: string;
  az: string;
  /** Registered capacity (what ECS can place), and what the tasks on it reserve. */
  cpuUnits: number;
  memoryMiB: number;
  tasks: { cpuUnits: number; memoryMiB: number }[];
}

export interface TaskSize {
  cpuUnits: number;
  memoryMiB: number;
}

const used = (i: ContainerInstanceState) =>
  i.tasks.reduce((sum, t) => ({ cpu: sum.cpu + t.cpuUnits, mem: sum.mem + t.memoryMiB }), { cpu: 0, mem: 0 });

export const freeCapacity = (i: ContainerInstanceState) => {
  const u = used(i);
  return { cpuUnits: i.cpuUnits - u.cpu, memoryMiB: i.memoryMiB - u.mem };
};

const fits = (i: ContainerInstanceState, task: TaskSize) => {
  const free = freeCapacity(i);
  return free.cpuUnits >= task.cpuUnits && free.memoryMiB >= task.memoryMiB;
};

/**
 * The container instance ECS would place the next task on, or undefined when none has room (the
 * task stays pending and the capacity provider scales out). Steps apply in order, each narrowing
 * the candidates, as ECS's placement strategies do; ties go to the lowest id (deterministic).
 */
export function placeTask(
  instances: ContainerInstanceState[],
  task: TaskSize,
  steps: PlacementStep[],
): string | undefined {
  let candidates = instances.filter((i) => fits(i, task)).sort((a, b) => a.id.localeCompare(b.id));
  for (const step of steps) {
    if (candidates.length <= 1) break;
    if (step.type === "binpack") {
      const left = (i: ContainerInstanceState) =>
        step.field === "cpu" ? freeCapacity(i).cpuUnits : freeCapacity(i).memoryMiB;
      const least = Math.min(...candidates.map(left));
      candidates = candidates.filter((i) => left(i) === least);
    } else if (step.field === "attribute:ecs.availability-zone") {
      // Tasks per AZ over every instance of the cluster, not only those with room.
      const perAz = new Map<string, number>();
      for (const i of instances) perAz.set(i.az, (perAz.get(i.az) ?? 0) + i.tasks.length);
      const fewest = Math.min(...candidates.map((i) => perAz.get(i.az) ?? 0));
      candidates = candidates.filter((i) => (perAz.get(i.az) ?? 0) === fewest);
    } else {
      const fewest = Math.min(...candidates.map((i) => i.tasks.length));
      candidates = candidates.filter((i) => i.tasks.length === fewest);
    }
  }
  return candidates[0]?.id;
}

/**
 * The capacity provider's managed scaling: the instances it wants for the tasks running and those
 * that could not be placed, at the target utilisation (ECS's CapacityProviderReservation: instances
 * needed / instances running × 100), within the group's min and max. Scale-in removes only empty
 * instances (managed termination protection keeps those with tasks).
 */
export function capacityProviderDecision(input: {
  instances: ContainerInstanceState[];
  /** Tasks the scheduler could not place on any instance. */
  unplacedTasks: number;
  targetUtilizationPercent: number;
  min: number;
  max: number;
}): { desiredInstances: number; removable: string[] } {
  const withTasks = input.instances.filter((i) => i.tasks.length > 0).length;
  // One more instance for pending tasks, as ECS does when tasks are in PROVISIONING.
  const needed = withTasks + (input.unplacedTasks > 0 ? 1 : 0);
  const atTarget = Math.ceil((needed * 100) / input.targetUtilizationPercent);
  const desiredInstances = Math.min(input.max, Math.max(input.min, atTarget));
  const surplus = input.instances.length - desiredInstances;
  const removable =
    surplus > 0
      ? input.instances
          .filter((i) => i.tasks.length === 0)
          .map((i) => i.id)
          .sort()
          .slice(0, surplus)
      : [];
  return { desiredInstances, removable };
}
