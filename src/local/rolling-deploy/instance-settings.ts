/**
 * What `stayup roll --set` and `POST /roll` may change: the service's own settings (LOG_LEVEL,
 * STAYUP_BROKEN, a deploy id...), the environment variables a version is made of. The description
 * has no list of them (the service reads what it reads, as user data sets it on AWS), so the rule
 * is an allow rule on the name's form (upper case: no lower-case npm_config_*, http_proxy...),
 * then a denylist, with the reason and the fix for each family: a setting must never change how a
 * process loads or runs code (that is running code as the stack's owner), nor what stayup itself
 * sets for an instance (its identity, its Redis endpoint and password, its address, its load-drill
 * secret). The one place both `POST /roll` and `stayup roll --set` ask.
 */

/** The size a `POST /roll` body may have: settings are a few short strings. */
export const rollBodyLimitBytes = 64 * 1024;
/** A setting's value, at most. */
export const settingValueLimitBytes = 4096;

/** The allow rule: what a setting's name looks like (upper case, digits and _; the denylist below comes after). */
export const settingNamePattern = /^[A-Z][A-Z0-9_]*$/;

/** What to do instead, for a name that changes how a process starts or loads code. */
const startFix =
  "instance settings are the service's own variables (LOG_LEVEL, FEATURE_X...); how an instance starts belongs in webService.start's command in stayup.config.ts (e.g. \"node --max-old-space-size=512 server.js\"), which `stayup up` rolls out";
/** What to do instead, for a name stayup sets itself. */
const ownFix = "name the service's setting otherwise (e.g. MY_SERVICE_PORT)";

/** Families of names refused, each with why and what to do instead. */
const refused: { test: (name: string) => boolean; why: string; fix: string }[] = [
  {
    test: (n) => n.startsWith("NODE_") && n !== "NODE_ENV",
    why: "NODE_* variables change how Node.js starts and loads code (NODE_OPTIONS --require/--import, NODE_PATH, NODE_EXTRA_CA_CERTS, NODE_TLS_REJECT_UNAUTHORIZED...)",
    fix: startFix,
  },
  {
    test: (n) => /^(LD|DYLD)_/.test(n) || ["GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH"].includes(n),
    why: "the dynamic loader and C library read it to load other code into every process (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, DYLD_*, GCONV_PATH...)",
    fix: startFix,
  },
  {
    test: (n) =>
      /^(PYTHON|PERL5?|RUBY|JAVA|_JAVA|JDK_JAVA|BASH_FUNC_|LUA_|PHP_|DOTNET_|CORECLR_|ERL_|ELIXIR_|R_PROFILE|R_ENVIRON|R_LIBS|GEM_|BUNDLE_|TCL)/.test(
        n,
      ) ||
      [
        "CLASSPATH",
        "BASH_ENV",
        "ENV",
        "SHELL",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "PROMPT_COMMAND",
      ].includes(n) ||
      ["PHPRC", "GOFLAGS", "GOROOT", "GOPATH", "GOTOOLCHAIN", "GOENV", "RUSTC_WRAPPER", "ZDOTDIR"].includes(
        n,
      ),
    why: "an interpreter or shell the instance may start reads it to load or run code (PYTHONPATH, PYTHONSTARTUP, PERL5OPT, RUBYOPT, JAVA_TOOL_OPTIONS, BASH_ENV, ENV, LUA_INIT, PHPRC, DOTNET_STARTUP_HOOKS, GOFLAGS...)",
    fix: startFix,
  },
  {
    test: (n) =>
      /^(NPM_CONFIG_|YARN_|PNPM_|COREPACK_|BUN_|DENO_|XDG_CONFIG|XDG_DATA)/.test(n) ||
      /^GIT_(SSH|EXEC_PATH|CONFIG|ASKPASS|EDITOR|PAGER|PROXY|EXTERNAL_DIFF|TEMPLATE_DIR|DIR|WORK_TREE)/.test(
        n,
      ) ||
      ["MAKEFLAGS", "MFLAGS", "EDITOR", "VISUAL", "PAGER", "BROWSER", "SUDO_ASKPASS", "SSH_ASKPASS"].includes(
        n,
      ),
    why: "a tool the start command may be (npm start, yarn, make, git...) reads it to choose a program to run or a configuration that can run one (NPM_CONFIG_SCRIPT_SHELL, GIT_SSH_COMMAND, MAKEFLAGS SHELL=, XDG_CONFIG_HOME...)",
    fix: startFix,
  },
  {
    test: (n) => n.startsWith("OPENSSL_") || n.startsWith("SSL_CERT_") || n.startsWith("UV_"),
    why: "OpenSSL and libuv read it at start (OPENSSL_CONF can load an engine: code; SSL_CERT_* changes what TLS trusts)",
    fix: startFix,
  },
  {
    test: (n) => ["PATH", "HOME", "TMPDIR", "HOST", "PORT"].includes(n),
    why: "the runtime sets it for every instance (where programs and files are found, the address the instance listens on)",
    fix: ownFix,
  },
  {
    test: (n) =>
      ["STAYUP_INSTANCE_ID", "STAYUP_AZ", "STAYUP_REGION", "STAYUP_VERSION", "REDIS_URL"].includes(n) ||
      n.startsWith("STAYUP_REDIS_") ||
      n.startsWith("STAYUP_LOAD_"),
    why: "stayup sets it for every instance (its identity, version, Redis endpoint and password, load-drill secret): a setting cannot redirect them",
    fix: ownFix,
  },
];

/** Why `name=value` cannot be an instance setting and what to do instead, or undefined when it can. */
export function instanceSettingRefusal(
  name: string,
  value: unknown,
): { problem: string; fix: string } | undefined {
  if (!settingNamePattern.test(name))
    return {
      problem: `"${name}" is not a setting name (upper case, digits and _)`,
      fix: "name it in upper case, e.g. LOG_LEVEL",
    };
  for (const family of refused) {
    if (family.test(name))
      return { problem: `${name} cannot be an instance setting: ${family.why}`, fix: family.fix };
  }
  if (typeof value !== "string")
    return {
      problem: `${name}: the value must be a string`,
      fix: 'e.g. {"settings": {"LOG_LEVEL": "debug"}}',
    };
  if (Buffer.byteLength(value) > settingValueLimitBytes)
    return {
      problem: `${name}: the value is longer than ${settingValueLimitBytes} bytes`,
      fix: "a setting is a short string: put more in a file the service reads",
    };
  return undefined;
}

/** The refusal as one line (problem; fix), as `POST /roll` answers it, or undefined. */
export function instanceSettingProblem(name: string, value: unknown): string | undefined {
  const refusal = instanceSettingRefusal(name, value);
  return refusal && `${refusal.problem}; ${refusal.fix}`;
}

/** Every problem of `settings` (empty: they can be rolled out). */
export function instanceSettingsProblems(settings: Record<string, unknown>): string[] {
  return Object.entries(settings).flatMap(([name, value]) => instanceSettingProblem(name, value) ?? []);
}
