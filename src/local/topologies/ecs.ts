import { EcsLocalStack } from "../ecs/stack.ts";
import type { LocalTopologyBuilder } from "./builder.ts";

/** Seed 004 locally: ECS tasks on container instances through a capacity provider, behind the load balancer. */
export const buildEcs: LocalTopologyBuilder = (options) => new EcsLocalStack(options);
