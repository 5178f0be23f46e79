import { z } from "zod";

/**
 * What AWS runs of the user's service (`webService.aws`, docs/your-service-on-aws.md). Absent, and
 * without `webService.start`, every topology runs the built-in counter, as before.
 *
 * - EC2 topologies (load-balanced, single-instance): `folder` is zipped into an S3 asset, unpacked on
 *   every instance at boot, `installCommand` runs in it as root, then `command` runs in it under
 *   systemd.
 * - ecs: the image is built from the project's Dockerfile and pushed to the environment's ECR
 *   repository as `<env>-<git sha>` (deploy.yml, or by hand), as for the counter; `command` runs in
 *   the image's WORKDIR, after a /bin/sh prelude that sets the instance's environment.
 */
const oneLine = (example: string) =>
  z
    .string()
    .trim()
    .min(1, `must be a command such as "${example}"`)
    .refine((c) => !/[\r\n\0]/.test(c), "must be one line (chain commands with && if you must)");

/** Not the service: history, dependencies built for this machine, stayup's state, CDK output. */
const defaultExclude = [".git", "node_modules", ".stayup", "cdk.out", "cdk.out-*"];

export const awsServiceArtifactSchema = z
  .object({
    /**
     * The folder uploaded to the EC2 instances, relative to the description file's folder (or
     * absolute). @default webService.start.workingDirectory
     */
    folder: z.string().min(1, 'must be a folder such as "." or "service"').optional(),
    /**
     * What starts one instance: on EC2 run by /bin/sh in `folder`, on ecs in the image's WORKDIR.
     * @default webService.start.command
     */
    command: oneLine("node server.js").optional(),
    /**
     * EC2 only: run by /bin/sh as root in the unpacked folder at every boot, before the service
     * starts (a runtime, dependencies): e.g. "dnf install -y nodejs20 nodejs20-npm && npm ci --omit=dev".
     * Amazon Linux 2023 has python3 (3.9), the AWS CLI and nothing for Node.js. @default nothing
     */
    installCommand: oneLine("dnf install -y nodejs20").optional(),
    /**
     * ecs only: who the container runs as, never root (the image's files must be readable to it):
     * a user the image knows, or uid:gid. @default "65534:65534" (nobody)
     */
    containerUser: z
      .string()
      .regex(
        /^[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?$|^\d+(:\d+)?$/,
        'must be a user such as "app" or "1000:1000"',
      )
      .refine((u) => !/^(root|0)(:|$)/.test(u), "must not be root: the task runs as a user of no privilege")
      .default("65534:65534"),
    /** EC2 only: paths (globs) of `folder` not uploaded. */
    exclude: z
      .array(z.string().min(1, "must be a path or glob such as node_modules"))
      .default(defaultExclude),
  })
  .strict();

export type AwsServiceArtifactInput = z.input<typeof awsServiceArtifactSchema>;

/** The fields of `webService` this file reads (`start` is the local start of one instance). */
interface WebServiceFields {
  start?: { command: string; workingDirectory: string };
  aws?: z.output<typeof awsServiceArtifactSchema>;
}

/** Problems of `webService.aws` that need `webService.start` to be judged (paths from webService). */
export function awsServiceArtifactProblems(web: WebServiceFields): { path: string[]; message: string }[] {
  const aws = web.aws;
  if (!aws || web.start) return [];
  const problems: { path: string[]; message: string }[] = [];
  if (!aws.command) {
    problems.push({
      path: ["aws", "command"],
      message: 'is required without webService.start: set it (e.g. "node server.js") or set webService.start',
    });
  }
  if (!aws.folder) {
    problems.push({
      path: ["aws", "folder"],
      message: 'is required without webService.start: set it (e.g. ".") or set webService.start',
    });
  }
  return problems;
}

/** What the EC2 topologies install and start. */
export type Ec2ServiceArtifact =
  | { kind: "counter" }
  | { kind: "folder"; folder: string; command: string; installCommand?: string; exclude: string[] };

/** What the ecs topology's container runs. */
export type ContainerServiceArtifact =
  { kind: "counter" } | { kind: "command"; command: string; user: string };

/**
 * The user's service on EC2, defaults filled in from `webService.start`: the counter when neither
 * is given. Both EC2 topologies call this, so they cannot disagree.
 */
export function ec2ServiceArtifact(web: WebServiceFields): Ec2ServiceArtifact {
  const command = web.aws?.command ?? web.start?.command;
  const folder = web.aws?.folder ?? web.start?.workingDirectory;
  if (!command || !folder) return { kind: "counter" };
  return {
    kind: "folder",
    folder,
    command,
    installCommand: web.aws?.installCommand,
    exclude: web.aws?.exclude ?? defaultExclude,
  };
}

/** The user's service on ecs: the command run in the image built from the project's Dockerfile. */
export function containerServiceArtifact(web: WebServiceFields): ContainerServiceArtifact {
  const command = web.aws?.command ?? web.start?.command;
  return command
    ? { kind: "command", command, user: web.aws?.containerUser ?? "65534:65534" }
    : { kind: "counter" };
}
