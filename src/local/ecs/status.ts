// The cluster's status as a type of its own: the runtime's StackStatus carries it, and the ECS
// stack (a LocalStack, above the runtime) fills it in.

/** `stayup status`'s view of the cluster: container instances with their tasks and free capacity. */
export interface EcsStatus {
  placement: string;
  clusterTargetUtilizationPercent: number;
  service: { desired: number; running: number; healthy: number; unplaced: number };
  containerInstances: {
    id: string;
    az: string;
    registered: { cpuUnits: number; memoryMiB: number };
    free: { cpuUnits: number; memoryMiB: number };
    tasks: { id: string; pid: number; port: number; health: string }[];
  }[];
}
