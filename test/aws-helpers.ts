import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Template } from "aws-cdk-lib/assertions";
import { type SynthesizedStack, synthesize } from "../src/aws/synth.ts";
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

/** Gives prod's Redis a cross-region replica (a Global Datastore), on a node type that runs one. */
export function withGlobalDatastore(d: StackDescription) {
  inHostedZone(d);
  d.environments.prod.redis = { nodeType: "cache.r7g.large", multiAz: true, crossRegion: "replica" };
}

/**
 * The environment the failover Lambdas get for prod with a Global Datastore (what the mocked-SDK
 * suites set before each test): the secondary group and its standby size, the topic, the datastore
 * and each region's member.
 */
export const globalDatastoreLambdaEnvironment = {
  SECONDARY_REGION: "us-east-1",
  SECONDARY_GROUP_NAME: "g",
  STANDBY_MIN_SIZE: "0",
  STANDBY_DESIRED_CAPACITY: "0",
  TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:t",
  GLOBAL_REPLICATION_GROUP_ID: "ldgnf-stayup-prod-redis",
  PRIMARY_REGION: "eu-west-3",
  PRIMARY_REPLICATION_GROUP_ID: "stayup-prod-redis",
  SECONDARY_REPLICATION_GROUP_ID: "stayup-prod-redis-us",
};

/**
 * What DescribeGlobalReplicationGroups answers for that datastore: its member in `primaryIn` is
 * the primary; the primary region's member (eu-west-3), while it follows, is `followerStatus`
 * ("associating" until it has caught up); the secondary region's is always associated.
 */
export const globalDatastoreMembers = (
  primaryIn: "eu-west-3" | "us-east-1",
  followerStatus = "associated",
) => ({
  GlobalReplicationGroups: [
    {
      GlobalReplicationGroupId: "ldgnf-stayup-prod-redis",
      Status: "available",
      Members: [
        {
          ReplicationGroupId: "stayup-prod-redis",
          ReplicationGroupRegion: "eu-west-3",
          Role: primaryIn === "eu-west-3" ? "PRIMARY" : "SECONDARY",
          Status: primaryIn === "eu-west-3" ? "associated" : followerStatus,
        },
        {
          ReplicationGroupId: "stayup-prod-redis-us",
          ReplicationGroupRegion: "us-east-1",
          Role: primaryIn === "us-east-1" ? "PRIMARY" : "SECONDARY",
          Status: "associated",
        },
      ],
    },
  ],
});

/**
 * The CLI's environment with no AWS credentials anywhere: no keys, no profile, no config or
 * credentials file (both named in `dir`, where none exists), no instance metadata.
 */
export function noCredentials(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: path.join(dir, "no-config"),
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, "no-credentials"),
  };
  for (const k of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"])
    delete env[k];
  return env;
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

/**
 * Synthesizes the description (CDK, no credentials). Under `npm test` (test/run.ts sets
 * STAYUP_TEST_SYNTH_CACHE) each distinct description is synthesized once per run: the first suite
 * to need it synthesizes it and leaves a copy of its output folder; the others get a copy of that
 * folder. `fresh` synthesizes regardless (a test of synthesis itself).
 */
export function synth(
  stack: Awaited<ReturnType<typeof description>>,
  compliance = false,
  imageTag?: string,
  { fresh = false }: { fresh?: boolean } = {},
): Synthesized {
  const outdir = path.join(tempDir("stayup-synth-"), stack.environment);
  const cacheRoot = process.env.STAYUP_TEST_SYNTH_CACHE;
  let stacks: SynthesizedStack[];
  if (cacheRoot && !fresh) {
    const key = createHash("sha256").update(JSON.stringify({ stack, compliance, imageTag })).digest("hex");
    stacks = cachedSynthesis(
      path.join(cacheRoot, key),
      outdir,
      () => synthesize(stack, outdir, { compliance, imageTag }).stacks,
    );
  } else {
    stacks = synthesize(stack, outdir, { compliance, imageTag }).stacks;
  }
  const templates: Record<string, Template> = {};
  const json: Record<string, Record<string, unknown>> = {};
  for (const s of stacks) {
    const kind = s.name.slice(`${stack.name}-${stack.environment}-`.length);
    json[kind] = JSON.parse(readFileSync(s.templateFile, "utf8"));
    templates[kind] = Template.fromJSON(json[kind] as Record<string, unknown>);
  }
  return {
    templates,
    json,
    outdir,
    order: stacks.map((s) => s.name),
    regions: Object.fromEntries(stacks.map((s) => [s.name, s.region])),
  };
}

/**
 * The synthesis stored in `entry`, copied to `outdir`; or `synthesizeInto(outdir)`'s, then stored.
 * While another process synthesizes the same entry (its lock folder exists), waits for it rather
 * than doing the same work beside it; after two minutes it synthesizes anyway.
 */
function cachedSynthesis(
  entry: string,
  outdir: string,
  synthesizeInto: () => SynthesizedStack[],
): SynthesizedStack[] {
  const lock = `${entry}.lock`;
  const stacksFile = `${entry}.stacks.json`;
  const deadline = Date.now() + 120_000;
  let locked = false;
  while (!locked) {
    if (existsSync(entry)) {
      cpSync(entry, outdir, { recursive: true });
      const stored = JSON.parse(readFileSync(stacksFile, "utf8")) as SynthesizedStack[];
      return stored.map((s) => ({ ...s, templateFile: path.join(outdir, s.templateFile) }));
    }
    try {
      mkdirSync(lock);
      locked = true;
    } catch {
      if (Date.now() > deadline) break;
      // synth() is synchronous (as CDK's synthesis is): a blocking pause while the other one works.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    const stacks = synthesizeInto();
    const relative = stacks.map((s) => ({ ...s, templateFile: path.relative(outdir, s.templateFile) }));
    // The folder's rename is what makes the entry visible: its stack list is written first.
    writeFileSync(stacksFile, JSON.stringify(relative));
    const staging = `${entry}.${process.pid}`;
    cpSync(outdir, staging, { recursive: true });
    try {
      renameSync(staging, entry);
    } catch {
      rmSync(staging, { recursive: true, force: true }); // another process stored it first
    }
    return stacks;
  } finally {
    if (locked) rmSync(lock, { recursive: true, force: true });
  }
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

export const resourcesOf = (json: Record<string, unknown>, type: string) =>
  Object.entries(json.Resources as Resources).filter(([, r]) => r.Type === type);
