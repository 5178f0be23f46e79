/**
 * Test code shared through test/helpers.ts that test/balancer-process.ts needs too: kept apart,
 * importing types only, so that the balancer's process, whose memory is measured, loads nothing else
 * (test/helpers.ts brings ioredis and the Redis controller: 12 to 18 MiB more at rest).
 */
import type { TargetSource } from "../src/local/load-balancer/balancer.ts";
import type { Target } from "../src/local/target-group/controller.ts";

/**
 * Healthy targets on loopback at `ports` (i-0, i-1, … in eu-west-3a) as a source that always routes
 * to all of them (no health checks): what a load balancer under test is put in front of.
 */
export function alwaysRoutable(ports: number[]): TargetSource {
  const targets: Target[] = ports.map((port, i) => ({
    instanceId: `i-${i}`,
    az: "eu-west-3a",
    host: "127.0.0.1",
    port,
    health: "healthy",
    consecutiveSuccesses: 2,
    consecutiveFailures: 0,
    registeredAt: 0,
  }));
  return {
    routable: () => targets,
    get: (id) => targets.find((t) => t.instanceId === id),
    reportConnectionFailure: () => undefined,
  };
}
