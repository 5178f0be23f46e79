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

/**
 * The user's container starts through this POSIX-sh prelude (the image needs /bin/sh, cat and sed:
 * any Debian, Alpine or UBI base; not distroless): it gives the service what every instance gets
 * (docs/your-service-on-aws.md) and then execs `command` in the image's WORKDIR, so the service is
 * PID 1 and gets SIGTERM. STAYUP_AZ and STAYUP_INSTANCE_ID (the task id) come from the ECS container
 * metadata file (ECS_ENABLE_CONTAINER_METADATA on the container instances), written within a second
 * of the start; REDIS_URL joins the token, injected from Secrets Manager at start, to the primary
 * endpoint's URL, so neither is in the task definition in clear.
 */
export function containerStartScript(command: string): string {
  return [
    // No ${…} anywhere: CloudFormation's linter takes it for a missing Fn::Sub.
    'f="$ECS_CONTAINER_METADATA_FILE"',
    "i=0",
    // Up to 10 s for the agent to fill the file in; without it the two names stay empty.
    'while [ -n "$f" ] && [ "$i" -lt 10 ]; do',
    '  case "$(cat "$f" 2>/dev/null)" in *\'"READY"\'*) break ;; esac',
    "  sleep 1; i=$((i + 1))",
    "done",
    'm="$(cat "$f" 2>/dev/null || true)"',
    'STAYUP_AZ="$(printf \'%s\\n\' "$m" | sed -n \'s/.*"AvailabilityZone": *"\\([^"]*\\)".*/\\1/p\')"',
    'STAYUP_INSTANCE_ID="$(printf \'%s\\n\' "$m" | sed -n \'s/.*"TaskARN": *"[^"]*\\/\\([^"/]*\\)".*/\\1/p\')"',
    // The token is letters and digits (database.ts): safe in a URL and in sed's replacement.
    'REDIS_URL="$(printf \'%s\\n\' "$STAYUP_REDIS_URL" | sed "s|^rediss://|rediss://:$STAYUP_REDIS_AUTH_TOKEN@|")"',
    "export STAYUP_AZ STAYUP_INSTANCE_ID REDIS_URL",
    "unset STAYUP_REDIS_AUTH_TOKEN f i m",
    `exec ${command}`,
  ].join("\n");
}
