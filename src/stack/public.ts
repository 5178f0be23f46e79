/**
 * The package's public entry (`import { defineStack } from "stayup"` in a project's
 * stayup.config.ts). Small on purpose: types and an identity function, nothing that loads the
 * runtime, so a description file loads fast and stays valid as stayup's internals move.
 */
import type { StackDescription } from "./schema.ts";

export type { EnvironmentName, StackDescription, Topology } from "./schema.ts";

/** Typed helper for `stayup.config.ts`: gives editor completion; validation happens at load. */
export function defineStack(description: StackDescription): StackDescription {
  return description;
}
