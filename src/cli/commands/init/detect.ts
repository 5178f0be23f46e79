import { StayupError } from "../../../shared/errors.ts";

/** What `stayup init` reads of a project: the files' text, or undefined when absent. */
export interface ProjectFiles {
  /** The folder's name, the description's `name` when package.json has none. */
  folderName: string;
  packageJson?: string;
  dockerfile?: string;
}

/** What the user said on the command line; each wins over what the files suggest. */
export interface InitChoices {
  command?: string;
  healthPath?: string;
  port?: number;
}

/** How the service starts and is checked, each value with where it came from. */
export interface DetectedService {
  name: string;
  command: string;
  commandFrom: string;
  /** The port every instance listens on on AWS (locally each instance gets a free one in PORT). */
  port: number;
  portFrom: string;
  healthPath: string;
  healthPathFrom: string;
  /** What the user should check before `stayup up`, one line each. */
  checks: string[];
}

export const DEFAULT_PORT = 8000;
export const DEFAULT_HEALTH_PATH = "/";

/** The Dockerfile's instructions: comments dropped, continuation lines joined, keywords upper-cased. */
export function dockerInstructions(dockerfile: string): { keyword: string; args: string }[] {
  const joined = dockerfile
    .split(/\r?\n/)
    .filter((line) => !/^\s*#/.test(line))
    .join("\n")
    .replace(/[ \t]*\\[ \t]*\n\s*/g, " ");
  return joined
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const match = /^(\S+)\s*(.*)$/.exec(line);
      return { keyword: (match?.[1] ?? "").toUpperCase(), args: (match?.[2] ?? "").trim() };
    });
}

/** An instruction's argument as an exec-form array (`["node", "server.js"]`), or undefined for shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.startsWith("[")) return undefined;
  try {
    const parsed: unknown = JSON.parse(args);
    if (Array.isArray(parsed) && parsed.every((a) => typeof a === "string")) return parsed as string[];
  } catch {
    // Docker runs a malformed array as a shell command; so do we.
  }
  return undefined;
}

/** Words back into one command line, quoting the ones a shell would split. */
function commandLine(words: string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)).join(" ");
}

/** `sh -c "..."` in exec form is the shell form written out: keep only the command. */
function unwrapShell(words: string[]): string[] | string {
  const [first, flag, script, ...rest] = words;
  if ((first === "/bin/sh" || first === "sh") && flag === "-c" && script !== undefined && rest.length === 0)
    return script;
  return words;
}

/**
 * The command a Dockerfile's container runs, as Docker composes it: the last ENTRYPOINT and the
 * last CMD; an exec-form ENTRYPOINT takes CMD's words as arguments, a shell-form one ignores CMD.
 */
export function dockerCommand(dockerfile: string): string | undefined {
  let entrypoint: string | undefined;
  let cmd: string | undefined;
  for (const { keyword, args } of dockerInstructions(dockerfile)) {
    if (keyword === "FROM") {
      // A later stage starts afresh: only the final stage's instructions make the image.
      entrypoint = undefined;
      cmd = undefined;
    }
    if (keyword === "ENTRYPOINT") entrypoint = args;
    if (keyword === "CMD") cmd = args;
  }
  const render = (args: string): string => {
    const words = execForm(args);
    if (!words) return args;
    const unwrapped = unwrapShell(words);
    return typeof unwrapped === "string" ? unwrapped : commandLine(unwrapped);
  };
  if (entrypoint !== undefined && entrypoint !== "" && entrypoint !== "[]") {
    const entryWords = execForm(entrypoint);
    if (entryWords && cmd !== undefined) {
      const cmdWords = execForm(cmd);
      // Exec-form ENTRYPOINT + exec-form CMD: CMD's words are its arguments.
      if (cmdWords) return commandLine([...entryWords, ...cmdWords]);
      // + shell-form CMD: Docker passes `/bin/sh -c "<cmd>"` as its arguments.
      return commandLine([...entryWords, "/bin/sh", "-c", cmd]);
    }
    return render(entrypoint);
  }
  return cmd !== undefined && cmd !== "" ? render(cmd) : undefined;
}

/** The ports a Dockerfile EXPOSEs (`EXPOSE 3000 8443/tcp`), and a port set in `ENV PORT=…`. */
export function dockerPorts(dockerfile: string): { exposed: number[]; envPort?: number } {
  const exposed: number[] = [];
  let envPort: number | undefined;
  for (const { keyword, args } of dockerInstructions(dockerfile)) {
    if (keyword === "EXPOSE") {
      for (const word of args.split(/\s+/)) {
        const port = Number(word.replace(/\/(tcp|udp)$/i, ""));
        if (Number.isInteger(port) && port > 0 && port < 65536 && !/udp$/i.test(word)) exposed.push(port);
      }
    }
    if (keyword === "ENV") {
      // ENV PORT=3000 [OTHER=…] or the legacy ENV PORT 3000.
      const match = /(?:^|\s)PORT(?:=|\s+)["']?(\d+)["']?(?:\s|$)/.exec(args);
      if (match) envPort = Number(match[1]);
    }
  }
  return { exposed, envPort };
}

/** A name the schema accepts (2-21 lower-case letters, digits or dashes, from a letter). */
export function descriptionName(raw: string): string {
  const cleaned = raw
    .toLowerCase()
    .replace(/^@[^/]*\//, "")
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+/g, "-")
    .slice(0, 21)
    .replace(/-+$/, "");
  return cleaned.length >= 2 ? cleaned : "app";
}

function parsePackageJson(text: string): { name?: unknown; scripts?: Record<string, unknown> } {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed && typeof parsed === "object" ? (parsed as { scripts?: Record<string, unknown> }) : {};
  } catch (error) {
    throw new StayupError(
      `package.json is not JSON: ${(error as Error).message}`,
      'fix it, or say how the service starts: stayup init --command "node server.js"',
    );
  }
}

/**
 * How the project's service starts, its port and health path: the command line's choices first,
 * then package.json's `start` script (`npm start`), then the Dockerfile's CMD/ENTRYPOINT.
 * Pure: `stayup init` reads the files, this decides.
 */
export function detectService(files: ProjectFiles, choices: InitChoices = {}): DetectedService {
  const pkg = files.packageJson === undefined ? undefined : parsePackageJson(files.packageJson);
  const startScript = typeof pkg?.scripts?.start === "string" ? pkg.scripts.start : undefined;
  const fromDocker = files.dockerfile === undefined ? undefined : dockerCommand(files.dockerfile);
  const ports = files.dockerfile === undefined ? { exposed: [] } : dockerPorts(files.dockerfile);
  const checks: string[] = [];

  let command: string;
  let commandFrom: string;
  if (choices.command !== undefined && choices.command.trim() !== "") {
    command = choices.command.trim();
    commandFrom = "--command";
  } else if (startScript !== undefined && startScript.trim() !== "") {
    command = "npm start";
    commandFrom = `package.json's start script (${startScript})`;
  } else if (fromDocker !== undefined) {
    command = fromDocker;
    commandFrom = "the Dockerfile's CMD/ENTRYPOINT";
    checks.push(
      "the command runs in this folder on your machine, not in the image: paths inside the image (WORKDIR, COPY destinations) may differ",
    );
  } else {
    throw new StayupError(
      "cannot tell how your service starts: no start script in package.json, no CMD or ENTRYPOINT in a Dockerfile",
      'say it: stayup init --command "node server.js" (or python3 app.py, ./bin/server ...)',
    );
  }

  let port = DEFAULT_PORT;
  let portFrom = `the default (${DEFAULT_PORT})`;
  if (choices.port !== undefined) {
    port = choices.port;
    portFrom = "--port";
  } else if (ports.exposed[0] !== undefined) {
    port = ports.exposed[0];
    portFrom = `the Dockerfile's EXPOSE ${port}`;
    if (ports.exposed.length > 1)
      checks.push(`the Dockerfile exposes ${ports.exposed.join(", ")}: the first is used`);
  } else if (ports.envPort !== undefined) {
    port = ports.envPort;
    portFrom = `the Dockerfile's ENV PORT=${port}`;
  }

  const healthPath = choices.healthPath ?? DEFAULT_HEALTH_PATH;
  const healthPathFrom =
    choices.healthPath === undefined ? `the default (${DEFAULT_HEALTH_PATH})` : "--health-path";
  if (!healthPath.startsWith("/") || /\s/.test(healthPath)) {
    throw new StayupError(
      `--health-path ${JSON.stringify(healthPath)} is not a path`,
      'give a path starting with / and without spaces, such as "/health"',
    );
  }
  if (choices.healthPath === undefined) {
    checks.push(
      "health checks GET / : point them at a cheap path that answers 200 without touching Redis (stayup init --force --health-path /health)",
    );
  }
  checks.push(
    "your service listens on the port in $PORT and the address in $HOST (each local instance gets its own port); a fixed port would clash",
    "Redis, if it uses one, is $REDIS_URL (it follows a failover); the service needs nothing else from stayup",
  );

  const rawName = typeof pkg?.name === "string" && pkg.name !== "" ? pkg.name : files.folderName;
  return {
    name: descriptionName(rawName),
    command,
    commandFrom,
    port,
    portFrom,
    healthPath,
    healthPathFrom,
    checks,
  };
}
