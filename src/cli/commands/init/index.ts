import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { StayupError } from "../../../shared/errors.ts";
import { configOption } from "../../options.ts";
import { type DetectedService, detectService, type InitChoices } from "./detect.ts";
import { renderDescription } from "./template.ts";

export interface InitOptions extends InitChoices {
  /** Where the description goes; its folder is the project's. */
  config: string;
  force?: boolean;
}

export interface InitResult {
  file: string;
  service: DetectedService;
}

const readIfPresent = (file: string) => (existsSync(file) ? readFileSync(file, "utf8") : undefined);

/**
 * `stayup init`: writes a starting stack description for the project in the description's folder,
 * from how the service starts (package.json's start script, the Dockerfile's CMD/ENTRYPOINT, or
 * --command), its port and health path; prints what it assumed and what to check.
 */
export function init(opts: InitOptions, log: (line: string) => void = console.log): InitResult {
  const file = path.resolve(opts.config);
  const dir = path.dirname(file);
  if (existsSync(file) && !opts.force) {
    throw new StayupError(
      `${file} exists; nothing was written`,
      "keep it (stayup up reads it), or replace it: stayup init --force",
    );
  }
  const service = detectService(
    {
      folderName: path.basename(dir),
      packageJson: readIfPresent(path.join(dir, "package.json")),
      dockerfile: readIfPresent(path.join(dir, "Dockerfile")),
    },
    { command: opts.command, healthPath: opts.healthPath, port: opts.port },
  );
  writeFileSync(file, renderDescription(service));
  const shown = path.relative(process.cwd(), file) || file;
  log(`wrote ${shown} (stack "${service.name}")`);
  log("assumed:");
  log(`  start      ${service.command}   (from ${service.commandFrom}), in ${dir}`);
  log(`  port       ${service.port} on AWS (from ${service.portFrom}); locally each instance gets $PORT`);
  log(`  health     GET ${service.healthPath} must answer 200 (from ${service.healthPathFrom})`);
  log("check:");
  for (const line of service.checks) log(`  - ${line}`);
  log("  - keep .stayup/ (the local stack's state, its Redis password) and cdk.out/ out of version control");
  log("next:");
  log(
    "  npx stayup up                    # runs it: 2 instances over 3 AZs, a load balancer on :8080, Redis",
  );
  log(
    "  npx stayup drill kill-instance   # in another terminal: kill one under traffic, see what clients saw",
  );
  log("  npx stayup down");
  return { file, service };
}

const portNumber = (value: string): number => {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError("must be a port number from 1 to 65535");
  return port;
};

export function register(program: Command): void {
  program
    .command("init")
    .description("write a starting stack description (stayup.config.ts) for the service in this folder")
    .option("--command <command>", "how one instance starts (default: npm start, or the Dockerfile's CMD)")
    .option("--health-path <path>", "the path health checks GET (default: /)")
    .addOption(
      new Option("--port <port>", "the port instances listen on on AWS (default: EXPOSE, or 8000)").argParser(
        portNumber,
      ),
    )
    .option("--force", "replace an existing description")
    .addOption(configOption())
    .action((opts: InitOptions) => {
      init(opts);
    });
}
