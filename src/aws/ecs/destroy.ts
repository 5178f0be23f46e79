import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  SetInstanceProtectionCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeServicesCommand, ECSClient, UpdateServiceCommand } from "@aws-sdk/client-ecs";
import { sleep } from "../../shared/net.ts";
import type { ResolvedStack } from "../../stack/index.ts";
import { resourcePrefix } from "../naming.ts";
import { clusterName, containerInstanceGroupName } from "./cluster.ts";

export const serviceName = (stack: ResolvedStack) => `${resourcePrefix(stack)}-web`;

export interface EcsTeardownClients {
  ecs: ECSClient;
  autoScaling: AutoScalingClient;
}

export interface EcsTeardownReport {
  /** The service's desired count was set to 0 (false: no service, already deleted). */
  serviceScaledToZero: boolean;
  /** Its running tasks reached 0 before the deadline. */
  tasksStopped: boolean;
  /** Container instances whose scale-in protection was cleared. */
  instancesUnprotected: string[];
}

const isNotFound = (error: unknown) =>
  /NotFound|not found|does not exist|INACTIVE/i.test(`${(error as Error).name} ${(error as Error).message}`);

/**
 * What `stayup destroy` does before CloudFormation deletes the ecs topology (seed 004's teardown):
 * the service scaled to 0 tasks and, with managed termination protection, scale-in protection
 * cleared on every container instance. Without it the group's deletion waits for protected
 * instances that nothing will ever unprotect (ECS stops managing them once the service is gone),
 * and the delete hangs. Safe to run twice, and on a stack that is half gone.
 */
export async function prepareEcsTeardown(
  stack: ResolvedStack,
  clients: EcsTeardownClients,
  options: { stopTimeoutMs?: number; pollMs?: number; log?: (line: string) => void } = {},
): Promise<EcsTeardownReport> {
  const log = options.log ?? (() => undefined);
  const cluster = clusterName(stack);
  const service = serviceName(stack);
  const report: EcsTeardownReport = {
    serviceScaledToZero: false,
    tasksStopped: false,
    instancesUnprotected: [],
  };

  try {
    await clients.ecs.send(new UpdateServiceCommand({ cluster, service, desiredCount: 0 }));
    report.serviceScaledToZero = true;
    log(`service ${service}: desired count 0`);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    log(`service ${service}: not found (already deleted)`);
  }
  if (report.serviceScaledToZero) {
    const deadline = Date.now() + (options.stopTimeoutMs ?? 300_000);
    for (;;) {
      const res = await clients.ecs.send(new DescribeServicesCommand({ cluster, services: [service] }));
      const running = res.services?.[0]?.runningCount ?? 0;
      if (running === 0) {
        report.tasksStopped = true;
        break;
      }
      if (Date.now() > deadline) {
        log(`service ${service}: ${running} tasks still running; continuing (CloudFormation stops them)`);
        break;
      }
      await sleep(options.pollMs ?? 5000);
    }
  }

  const groupName = containerInstanceGroupName(stack);
  const groups = await clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
  );
  const group = groups.AutoScalingGroups?.[0];
  if (!group) {
    log(`group ${groupName}: not found (already deleted)`);
    return report;
  }
  // New instances must not come up protected while the group is being deleted.
  await clients.autoScaling.send(
    new UpdateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName,
      NewInstancesProtectedFromScaleIn: false,
    }),
  );
  const protectedIds = (group.Instances ?? [])
    .filter((i) => i.ProtectedFromScaleIn)
    .map((i) => i.InstanceId)
    .filter((id): id is string => Boolean(id));
  // SetInstanceProtection takes at most 50 instances per call.
  for (let i = 0; i < protectedIds.length; i += 50) {
    const batch = protectedIds.slice(i, i + 50);
    await clients.autoScaling.send(
      new SetInstanceProtectionCommand({
        AutoScalingGroupName: groupName,
        InstanceIds: batch,
        ProtectedFromScaleIn: false,
      }),
    );
    report.instancesUnprotected.push(...batch);
  }
  log(`group ${groupName}: scale-in protection cleared on ${protectedIds.length} instance(s)`);
  return report;
}
