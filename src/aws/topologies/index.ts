import type { Topology } from "../../stack/index.ts";
import type { AwsTopologyBuilder } from "./builder.ts";
import { buildEcs } from "./ecs.ts";
import { buildLoadBalanced } from "./load-balanced.ts";
import { buildSingleInstance } from "./single-instance.ts";

export type { AwsTopologyBuilder, AwsTopologyContext } from "./builder.ts";

/**
 * The one place a topology picks its AWS builder. A topology added to the description without a
 * builder here does not compile.
 */
export const awsTopologies = {
  "load-balanced": buildLoadBalanced,
  "single-instance": buildSingleInstance,
  ecs: buildEcs,
} satisfies Record<Topology, AwsTopologyBuilder>;
