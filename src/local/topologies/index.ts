import type { LocalStack, LocalStackOptions } from "../runtime.ts";
import type { LocalTopologyBuilder } from "./builder.ts";
import { buildEcs } from "./ecs.ts";
import { buildLoadBalanced } from "./load-balanced.ts";
import { buildSingleInstance } from "./single-instance.ts";
import type { Topology } from "../../stack/index.ts";

export type { LocalTopologyBuilder } from "./builder.ts";

/**
 * The one place a topology picks its local builder. A topology added to the description without a
 * builder here does not compile.
 */
export const localTopologies = {
  "load-balanced": buildLoadBalanced,
  "single-instance": buildSingleInstance,
  ecs: buildEcs,
} satisfies Record<Topology, LocalTopologyBuilder>;

/** The local runtime of the description's topology. */
export function createLocalStack(options: LocalStackOptions): LocalStack {
  return localTopologies[options.stack.topology](options);
}
