/**
 * The defaults of `loadBalancer.local.limits` (schema.ts): generous for any development use, so a
 * user never needs to set them; a test sets shorter ones to show them. A module of its own, without
 * zod: the balancer's worker processes read it too.
 */
const MiB = 1024 * 1024;

export const LOAD_BALANCER_LIMIT_DEFAULTS = {
  requestTimeoutMs: 60_000,
  maxClientConnections: 4096,
  maxRequestHeadBytes: 16 * 1024,
  maxRequestBodyBytes: 10 * MiB,
  maxBufferedRequestBytesTotal: 64 * MiB,
  maxQueuedResponseBytes: 1 * MiB,
  maxConnectionsPerTarget: 128,
  targetQueueTimeoutMs: 60_000,
} as const;
