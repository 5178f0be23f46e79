import { placementSteps, registeredCapacity } from "../../stack/ecs.ts";
import type { ResolvedStack } from "../../stack/index.ts";
import {
  capacityProviderDecision,
  type ContainerInstanceState,
  placeTask,
} from "../../stack/ecs-placement.ts";

/**
 * How many container instances the ecs topology runs once the service has its desired tasks: the
 * placement (binpack or spread) and the capacity provider's managed scaling at the cluster's target
 * utilisation, with the very decision functions the local runtime runs (src/stack/ecs-placement.ts)
 * and the description's values the stacks render (tasks, placement, target, group min and max,
 * task size, the first instance type's registered capacity). The group's template has no desired
 * capacity (managed scaling owns it), so the cost estimate needs this.
 */
export function steadyContainerInstances(stack: ResolvedStack): { count: number; why: string } {
  const type = stack.web.instanceTypes[0] as string;
  const capacity = registeredCapacity(type);
  if (!capacity) throw new Error(`no registered capacity known for ${type}`);
  const azs = stack.regions.primary.availabilityZones;
  const { min, max } = stack.web.capacity;
  const target = stack.ecs.clusterTargetUtilizationPercent;
  const steps = placementSteps(stack.ecs.placement);
  const instances: ContainerInstanceState[] = [];
  const add = () =>
    instances.push({
      id: `i-${String(instances.length).padStart(3, "0")}`,
      az: azs[instances.length % azs.length] as string,
      ...capacity,
      tasks: [],
    });
  while (instances.length < min) add();
  // Place the tasks, let managed scaling answer, and again until the count no longer changes.
  for (let round = 0; round < 100; round++) {
    for (const i of instances) i.tasks = [];
    let unplaced = 0;
    for (let t = 0; t < stack.ecs.tasks.desired; t++) {
      const id = placeTask(instances, stack.ecs.task, steps);
      const instance = instances.find((i) => i.id === id);
      if (instance) instance.tasks.push({ ...stack.ecs.task });
      else unplaced++;
    }
    const { desiredInstances } = capacityProviderDecision({
      instances,
      unplacedTasks: unplaced,
      targetUtilizationPercent: target,
      min,
      max,
    });
    if (desiredInstances === instances.length) {
      const withTasks = instances.filter((i) => i.tasks.length > 0).length;
      return {
        count: instances.length,
        why: `${stack.ecs.tasks.desired} ${stack.ecs.placement} tasks on ${withTasks} instance(s), at ${target} % target utilisation, group min ${min} max ${max}`,
      };
    }
    if (desiredInstances > instances.length) add();
    else instances.pop();
  }
  throw new Error("container instance count did not settle");
}
