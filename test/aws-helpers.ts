import { readFileSync } from "node:fs";
import path from "node:path";
import { Template } from "aws-cdk-lib/assertions";
import { synthesize } from "../src/aws/synth.ts";
import {
  type EnvironmentName,
  resolveStack,
  type StackDescription,
  validateStack,
} from "../src/stack/index.ts";
import { tempDir } from "./helpers.ts";

/** The repository's description, optionally changed, validated and resolved like `loadStack`. */
export async function description(env: EnvironmentName, change?: (d: StackDescription) => void) {
  const input = structuredClone((await import("../stayup.config.ts")).default);
  change?.(input);
  return resolveStack(validateStack(input), env);
}

/** Gives a description a Route 53 zone (and puts dns.name in it), as a user who owns one would. */
export function inHostedZone(d: StackDescription, zone = { id: "Z0123456789ABC", name: "example.com" }) {
  d.aws.hostedZone = zone;
  if (d.dns) d.dns.name = `app.${zone.name}`;
}

/** Moves the primary to us-west-2 and the secondary to eu-west-1: neither is us-east-1. */
export function inOtherRegions(d: StackDescription) {
  d.regions.primary = { name: "us-west-2", availabilityZones: ["us-west-2a", "us-west-2b", "us-west-2c"] };
  if (d.regions.secondary) {
    d.regions.secondary.name = "eu-west-1";
    d.regions.secondary.availabilityZones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
  }
}

export interface Synthesized {
  templates: Record<string, Template>;
  json: Record<string, Record<string, unknown>>;
  outdir: string;
  order: string[];
  regions: Record<string, string>;
}

export function synth(
  stack: Awaited<ReturnType<typeof description>>,
  compliance = false,
  imageTag?: string,
): Synthesized {
  const outdir = path.join(tempDir("stayup-synth-"), stack.environment);
  const result = synthesize(stack, outdir, { compliance, imageTag });
  const templates: Record<string, Template> = {};
  const json: Record<string, Record<string, unknown>> = {};
  for (const s of result.stacks) {
    const kind = s.name.slice(`${stack.name}-${stack.environment}-`.length);
    json[kind] = JSON.parse(readFileSync(s.templateFile, "utf8"));
    templates[kind] = Template.fromJSON(json[kind] as Record<string, unknown>);
  }
  return {
    templates,
    json,
    outdir,
    order: result.stacks.map((s) => s.name),
    regions: Object.fromEntries(result.stacks.map((s) => [s.name, s.region])),
  };
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

export const resourcesOf = (json: Record<string, unknown>, type: string) =>
  Object.entries(json.Resources as Resources).filter(([, r]) => r.Type === type);
