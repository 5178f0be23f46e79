import { Option } from "commander";
import {
  defaultConfigFile,
  type EnvironmentName,
  environmentNames,
  type Topology,
  topologies,
} from "../stack/names.ts";

/** What commands that read the stack description get from these options. */
export interface DescriptionOptions {
  config: string;
  env: EnvironmentName;
  topology?: Topology;
  /** The ecs topology's image tag, `<env>-<git sha>` (default: the commit checked out). */
  imageTag?: string;
}

/** And those that run a local stack. */
export interface LocalOptions extends DescriptionOptions {
  stateDir: string;
}

/** Options every command that reads the stack description shares. */
export const configOption = () =>
  new Option("-c, --config <file>", "stack description").default(defaultConfigFile);

export const envOption = () =>
  new Option("-e, --env <environment>", "environment of the stack description")
    .choices(environmentNames)
    .default("dev");

export const stateDirOption = () =>
  new Option("--state-dir <dir>", "where a local stack keeps its data, logs and state file").default(
    ".stayup",
  );

/** Overrides the description's `topology` for this run (the file is not changed). */
/** `--topology`; `extraChoices`: a command's own values beside the topologies (synth's "all"). */
export const topologyOption = (extraChoices: readonly string[] = []) =>
  new Option("-t, --topology <topology>", "topology (default: the description's `topology`)").choices([
    ...topologies,
    ...extraChoices,
  ]);

/** The image the ecs topology's service runs (CI pushes it to the repository first). */
export const imageTagOption = () =>
  new Option(
    "--image-tag <tag>",
    "ecs topology: image tag <env>-<git sha> (default: the commit checked out)",
  );
