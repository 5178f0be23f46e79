import { Option } from "commander";
import { defaultConfigFile, environmentNames } from "../stack/index.ts";

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
