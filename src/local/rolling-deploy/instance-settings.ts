/**
 * What `stayup roll --set` and `POST /roll` may change: the service's own settings (LOG_LEVEL,
 * STAYUP_BROKEN, a deploy id...), the environment variables a version is made of. The description
 * has no list of them (the service reads what it reads, as user data sets it on AWS), so this is
 * a denylist, with the reason for each family: a setting must never change how a process loads or
 * runs code (that is running code as the stack's owner), nor what stayup itself sets for an
 * instance (its identity, its Redis endpoint and password, its address, its load-drill secret).
 */

/** The size a `POST /roll` body may have: settings are a few short strings. */
export const rollBodyLimitBytes = 64 * 1024;
/** A setting's value, at most. */
export const settingValueLimitBytes = 4096;

const settingName = /^[A-Z][A-Z0-9_]*$/;

/** Families of names refused, each with why. */
const refused: { test: (name: string) => boolean; why: string }[] = [
  {
    test: (n) => n.startsWith("NODE_") && n !== "NODE_ENV",
    why: "NODE_* variables change how Node.js starts and loads code (NODE_OPTIONS --require/--import, NODE_PATH, NODE_EXTRA_CA_CERTS, NODE_TLS_REJECT_UNAUTHORIZED...)",
  },
  {
    test: (n) => /^(LD|DYLD)_/.test(n) || ["GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH"].includes(n),
    why: "the dynamic loader and C library read it to load other code into every process (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, DYLD_*, GCONV_PATH...)",
  },
  {
    test: (n) =>
      /^(PYTHON|PERL5?|RUBY|JAVA|_JAVA|JDK_JAVA|BASH_FUNC_)/.test(n) ||
      ["CLASSPATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "PROMPT_COMMAND"].includes(n),
    why: "an interpreter or shell the instance may start reads it to load or run code (PYTHONPATH, PERL5OPT, RUBYOPT, JAVA_TOOL_OPTIONS, BASH_ENV...)",
  },
  {
    test: (n) => n.startsWith("OPENSSL_") || n.startsWith("SSL_CERT_") || n.startsWith("UV_"),
    why: "OpenSSL and libuv read it at start (OPENSSL_CONF can load an engine: code; SSL_CERT_* changes what TLS trusts)",
  },
  {
    test: (n) => ["PATH", "HOME", "TMPDIR", "HOST", "PORT"].includes(n),
    why: "the runtime sets it for every instance (where programs and files are found, the address the instance listens on)",
  },
  {
    test: (n) =>
      ["STAYUP_INSTANCE_ID", "STAYUP_AZ", "STAYUP_REGION", "STAYUP_VERSION"].includes(n) ||
      n.startsWith("STAYUP_REDIS_") ||
      n.startsWith("STAYUP_LOAD_"),
    why: "stayup sets it for every instance (its identity, version, Redis endpoint and password, load-drill secret): a setting cannot redirect them",
  },
];

/** Why `name=value` cannot be an instance setting, or undefined when it can. */
export function instanceSettingProblem(name: string, value: unknown): string | undefined {
  if (!settingName.test(name)) return `"${name}" is not a setting name (upper case, digits and _)`;
  for (const family of refused) {
    if (family.test(name)) return `${name} cannot be an instance setting: ${family.why}`;
  }
  if (typeof value !== "string") return `${name}: the value must be a string`;
  if (Buffer.byteLength(value) > settingValueLimitBytes)
    return `${name}: the value is longer than ${settingValueLimitBytes} bytes`;
  return undefined;
}

/** Every problem of `settings` (empty: they can be rolled out). */
export function instanceSettingsProblems(settings: Record<string, unknown>): string[] {
  return Object.entries(settings).flatMap(([name, value]) => instanceSettingProblem(name, value) ?? []);
}
