// The description's names that a command line offers before it reads any description: kept apart
// from schema.ts so that the commands that read none (`stayup status`) do not load zod.

/**
 * How the web service is run, on AWS and locally; each renderer has one builder per topology.
 * `load-balanced`: tutorial 07 (a load balancer in front of a group over the AZs, Redis apart).
 * `single-instance`: seed 003 (a group of 1 with a stable address and a data volume, no load balancer).
 * `ecs`: seed 004 (ECS tasks on EC2 container instances through a capacity provider, behind the load balancer).
 */
export const topologies = ["load-balanced", "single-instance", "ecs"] as const;
export type Topology = (typeof topologies)[number];

export const environmentNames = ["dev", "prod"] as const;
export type EnvironmentName = (typeof environmentNames)[number];

export const defaultConfigFile = "stayup.config.ts";
