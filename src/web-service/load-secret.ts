import { createHash, timingSafeEqual } from "node:crypto";

/**
 * GET /load burns CPU: an instance serves it only to a request carrying the stack's load secret in
 * this header. The local runtime makes one secret per run and gives it to its instances and, in the
 * private state file, to the load drills (cpu-spike); nobody else can make an instance burn CPU.
 */
export const loadSecretHeader = "x-stayup-load-secret";

/** Compared in constant time (through digests, so a length difference tells nothing either). */
export const sameSecret = (given: string, secret: string): boolean =>
  timingSafeEqual(createHash("sha256").update(given).digest(), createHash("sha256").update(secret).digest());
