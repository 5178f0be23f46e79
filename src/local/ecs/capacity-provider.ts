import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import type { InstanceGroupController } from "../instance-group/controller.ts";
import { capacityProviderDecision } from "./decide.ts";
import type { EcsServiceController } from "./service.ts";

/**
 * The capacity provider's managed scaling: adds container instances when tasks cannot be placed or
 * the cluster is above the target utilisation, removes empty ones (managed termination protection
 * keeps those with tasks). The decision is decide.ts's; this only applies it to the group.
 */
export class CapacityProviderController {
  private timer?: NodeJS.Timeout;
  private readonly guard: ControllerGuard;

  constructor(
    private readonly group: InstanceGroupController,
    private readonly service: EcsServiceController,
    private readonly targetUtilizationPercent: number,
    private readonly events: EventPublisher,
    private readonly evaluationIntervalMs = 1000,
  ) {
    this.guard = new ControllerGuard({ controller: "capacity-provider", events });
  }

  start(): void {
    this.evaluate();
    this.timer = setInterval(() => this.evaluate(), this.evaluationIntervalMs);
  }

  /** One evaluation; a failure is an event and the next evaluation retries it. */
  evaluate(): void {
    this.guard.run(() => this.evaluateOnce(), "retried at the next evaluation");
  }

  private evaluateOnce(): void {
    const { min, max, desired } = this.group.capacity;
    const decision = capacityProviderDecision({
      instances: this.service.observe(),
      unplacedTasks: this.service.unplaced,
      targetUtilizationPercent: this.targetUtilizationPercent,
      min,
      max,
    });
    if (decision.desiredInstances > desired) {
      const reason = `CapacityProviderReservation above ${this.targetUtilizationPercent} % (${this.service.unplaced} task(s) unplaced)`;
      this.events.publish({
        type: "capacity-provider.scaling",
        desiredInstances: decision.desiredInstances,
        reason,
      });
      this.group.setDesiredCapacity(decision.desiredInstances, reason);
    } else if (decision.desiredInstances < desired) {
      for (const id of decision.removable) {
        const reason = `empty container instance ${id} above the target utilisation's need`;
        if (this.group.terminateInstance(id, reason)) {
          this.events.publish({
            type: "capacity-provider.scaling",
            desiredInstances: this.group.capacity.desired,
            reason,
          });
        }
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.guard.stop();
  }
}
