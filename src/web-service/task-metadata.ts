/**
 * An ECS task's availability zone, from the task metadata endpoint v4: the ECS agent gives every
 * container its URI in ECS_CONTAINER_METADATA_URI_V4, and `GET ${uri}/task` answers the task's
 * metadata, AvailabilityZone included (EC2 and Fargate). A task definition cannot say which AZ its
 * task lands in, so the service asks. Undefined when not on ECS or when the endpoint does not
 * answer in time: the page then says "unknown", as before.
 */
export async function taskAvailabilityZone(
  env: NodeJS.ProcessEnv,
  timeoutMs = 2000,
): Promise<string | undefined> {
  const uri = env.ECS_CONTAINER_METADATA_URI_V4;
  if (!uri) return undefined;
  try {
    const res = await fetch(`${uri}/task`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return undefined;
    const task = (await res.json()) as { AvailabilityZone?: unknown };
    return typeof task.AvailabilityZone === "string" && task.AvailabilityZone
      ? task.AvailabilityZone
      : undefined;
  } catch {
    return undefined;
  }
}
