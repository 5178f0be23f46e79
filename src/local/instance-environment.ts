/**
 * The environment an instance (an instance group's, the single instance, an ECS task) starts with:
 * built from an explicit list, never the CLI's whole environment. An instance on AWS does not get
 * the deployer's AWS credentials or shell variables; locally it must not either (AWS_*, tokens,
 * NODE_OPTIONS and the like of whoever ran `stayup up` stay with the CLI).
 */

/** Taken from the runtime's environment when set: what any process needs to run and format. */
export const inheritedVariables = ["PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "NODE_ENV"] as const;

/** Locale categories (LC_ALL, LC_CTYPE...): formatting only. */
const inheritedPattern = /^LC_[A-Z_]+$/;

/** What an instance inherits from `from` (the runtime's environment by default). */
export function inheritedEnvironment(from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined) continue;
    if ((inheritedVariables as readonly string[]).includes(name) || inheritedPattern.test(name)) {
      env[name] = value;
    }
  }
  return env;
}

/**
 * An instance's whole environment: the inherited basics, then what stayup sets (Redis endpoint,
 * identity, version, instance settings: `own`, already checked by instance-settings.ts).
 */
export function instanceEnvironment(own: Record<string, string>): Record<string, string> {
  return { ...inheritedEnvironment(), ...own };
}
