import type { ResolvedStack } from "../../stack/index.ts";

/**
 * The container's health probe, one definition for the Dockerfile's HEALTHCHECK and the ECS task
 * definition's container health check: Node's own fetch (the slim image has no curl) against the
 * description's health-check path on the service's port.
 */
export function containerHealthProbe(stack: Pick<ResolvedStack, "webService" | "targetGroup">): string[] {
  const url = `http://127.0.0.1:${stack.webService.port}${stack.targetGroup.healthCheck.path}`;
  return ["node", "-e", `fetch('${url}').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`];
}

/** Timings of the container health check: the ALB's interval and timeout, its unhealthy threshold. */
export function containerHealthTimings(stack: Pick<ResolvedStack, "targetGroup">) {
  const hc = stack.targetGroup.healthCheck;
  return {
    intervalSeconds: hc.aws.intervalSeconds,
    timeoutSeconds: hc.aws.timeoutSeconds,
    retries: hc.unhealthyThreshold,
    startPeriodSeconds: 10,
  };
}

/** Where the image's runtime stage puts the bundle. */
export const containerBundlePath = "/app/web-service.mjs";
