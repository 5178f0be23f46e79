import { SingleInstanceLocalStack } from "../single-instance/stack.ts";
import type { LocalTopologyBuilder } from "./builder.ts";

/** Seed 003 locally: a group of one, its stable address and its data volume; no load balancer. */
export const buildSingleInstance: LocalTopologyBuilder = (options) => new SingleInstanceLocalStack(options);
