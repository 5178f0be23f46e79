import { LocalStack } from "../runtime.ts";
import type { LocalTopologyBuilder } from "./builder.ts";

/** Tutorial 07 locally: per region a load balancer, a target group and an instance group over the AZs. */
export const buildLoadBalanced: LocalTopologyBuilder = (options) => new LocalStack(options);
