/**
 * The test runner behind `npm test` and `npm run test:unit`: node:test's `run()` over test/*.test.ts,
 * reported as `node --test` reports (spec on a terminal, TAP otherwise), ending with node:test's
 * summary lines (tests, pass, fail …) and exit code 1 on any failure.
 *
 * Files run in two groups:
 * - every file not listed below, several at a time (STAYUP_TEST_CONCURRENCY, default 3, and up to
 *   two more while the CPU is at least 35 % idle; see `extraSlots`): each uses free ports and its
 *   own temporary state, so they can share the machine;
 * - `alone`: one at a time once the others are done, nothing beside them.
 * A new test file needs no entry here: it runs in the concurrent group. It goes in `alone` only if
 * it loads the machine itself or judges figures other suites' load would move; in `unit` if it
 * starts no stack, server, redis-server or browser (see `unit`).
 *
 * Usage: node --import tsx test/run.ts [--unit] [test/x.test.ts …]
 * Per-file durations go to test-artifacts/test-durations.json; the ten slowest are printed before
 * the summary.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { setMaxListeners } from "node:events";
import path from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { run } from "node:test";
import { spec, tap, type TestEvent } from "node:test/reporters";

const testDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(testDir, "..");

/**
 * Run one at a time with nothing beside them, once the others are done. The cpu-spike suites start
 * CPU burners on every core themselves and judge the stack's scaling under that load (their burners
 * would also starve the other suites' health checks). gray-failures is no longer here: its
 * slow-redis drill (a whole group made slower must have none ejected) once saw two instances
 * ejected beside two other suites, because one instance's process held up for half a second by the
 * busy machine timed out beside a peer that answered in time; outlier detection now ejects on
 * timeouts at once only beside peers that answer quickly (src/local/load-balancer/outlier-detection.ts).
 */
const alone = new Set(["cpu-spike-under-load.test.ts"]);

/**
 * `npm run test:unit`: the suites that start no stack, no server, no redis-server and no browser
 * (at most the CLI, to print an error): decisions, parsers, the schema, CDK assertions on
 * synthesized templates. Under a minute on two cores.
 */
const unit = new Set([
  "aws-dns-failover.test.ts",
  "aws-failover-handlers.test.ts",
  "aws-global-datastore.test.ts",
  "aws-hardening.test.ts",
  "aws-nightly-stop-settings.test.ts",
  "aws-region-failback.test.ts",
  "aws-stacks.test.ts",
  "cli-help.test.ts",
  "cli-usage-errors.test.ts",
  "controller-guard.test.ts",
  "derived.test.ts",
  "docs.test.ts",
  "drill-victim.test.ts",
  "ecs-decide.test.ts",
  "event-bus.test.ts",
  "failover-model.test.ts",
  "failover-probe-verdict.test.ts",
  "init-detect.test.ts",
  "instance-group-controller.test.ts",
  "instance-group-decide.test.ts",
  "new-user-figures.test.ts",
  "region-outage-phases.test.ts",
  "route53-failover.test.ts",
  "rolling-deploy-decide.test.ts",
  "scaling-track-target.test.ts",
  "stack-description.test.ts",
  "your-service-decisions.test.ts",
]);

/**
 * The longest suites (measured: docs/benchmarks.md), started first so that none of them starts
 * last and leaves the other slots idle; the rest follow in name order.
 */
const longestFirst = [
  // Measured 2026-12-07 (test-durations.json of a fresh-clone run, three or four files side by side),
  // after the AWS suites' syntheses got cheaper: the longest wall times first, stack suites (mostly
  // waiting on their processes) and AWS suites (mostly CPU) interleaved.
  "aws-lifecycle-moto.test.ts",
  "local-stack.test.ts",
  "examples-packed.test.ts",
  "drill-interrupted.test.ts",
  "aws-compliance.test.ts",
  "leftovers.test.ts",
  "dashboard.test.ts",
  "aws-ci-stack.test.ts",
  "gray-failures.test.ts",
  "dashboard-client-figures.test.ts",
  "aws-your-service.test.ts",
  "single-instance-local.test.ts",
  "topology.test.ts",
  "rolling-deploy.test.ts",
  "aws-lifecycle.test.ts",
  "cli.test.ts",
  "aws-ecs.test.ts",
  "up-running.test.ts",
  "drill-report.test.ts",
  "aws-destroy.test.ts",
  "local-ecs.test.ts",
  "aws-cost.test.ts",
  "ci-workflows.test.ts",
  "acknowledged-writes.test.ts",
  "aws-ci-drift.test.ts",
  "region-outage-replica.test.ts",
  "diagram.test.ts",
  "drill-topologies.test.ts",
  "rolling-deploy-up.test.ts",
  "region-outage-active.test.ts",
  "service-folder-version.test.ts",
  "load-balancer-hostile.test.ts",
  "aws-moto-deploy.test.ts",
];

const args = process.argv.slice(2);
const unitOnly = args.includes("--unit");
const named = args.filter((a) => !a.startsWith("--")).map((a) => path.basename(a));
const all = readdirSync(testDir)
  .filter((f) => f.endsWith(".test.ts"))
  .sort();
for (const f of named) if (!all.includes(f)) throw new Error(`no test file test/${f}`);
const chosen = named.length > 0 ? named : unitOnly ? all.filter((f) => unit.has(f)) : all;
const rank = (f: string) => (longestFirst.includes(f) ? longestFirst.indexOf(f) : longestFirst.length);
const concurrentFiles = chosen.filter((f) => !alone.has(f)).sort((a, b) => rank(a) - rank(b));
const aloneFiles = chosen.filter((f) => alone.has(f));

const pinned = process.env.STAYUP_TEST_CONCURRENCY;
const concurrency = Number(pinned ?? (unitOnly ? Math.max(2, availableParallelism()) : 3));
if (!Number.isInteger(concurrency) || concurrency < 1) {
  throw new Error(`STAYUP_TEST_CONCURRENCY must be a positive integer, got ${concurrency}`);
}
/**
 * Up to two files more than `concurrency` while the machine has CPU to spare: most files mostly
 * wait on the processes they start (about 1.4 of 2 cores busy in a quiet run at three or four at a
 * time), but beside CPU-bound work (two busy loops, a loaded CI host) more would only slow the
 * others. One extra file at a time, each after the CPU was seen idle for a whole window since the
 * last one started. Not when STAYUP_TEST_CONCURRENCY is set: then that many, exactly.
 */
const extraSlots = pinned === undefined && !unitOnly ? Number(process.env.STAYUP_TEST_EXTRA_SLOTS ?? 2) : 0;
/** The share of CPU time idle, over the last sampling window, for the extra slot to open. */
const idleShareForExtra = 0.35;

// One synthesis per description per run, shared by the AWS suites' processes (test/aws-helpers.ts).
const synthCache = mkdtempSync(path.join(tmpdir(), "stayup-synth-cache-"));
process.env.STAYUP_TEST_SYNTH_CACHE = synthCache;
// One `npm pack` + `npm install` of stayup per run, shared by the suites that use it (test/packaged.ts).
const packageCache = mkdtempSync(path.join(tmpdir(), "stayup-package-cache-"));
process.env.STAYUP_TEST_PACKAGE_CACHE = packageCache;

// Ctrl-C or a CI cancel stops the test processes (and through their `after` hooks, what they started).
const abort = new AbortController();
// Every file's run() listens on it (a hundred files): not a leak, so no MaxListeners warning.
setMaxListeners(0, abort.signal);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => abort.abort());

const summaryKeys = ["tests", "suites", "pass", "fail", "cancelled", "skipped", "todo"] as const;
const totals = Object.fromEntries(summaryKeys.map((k) => [k, 0])) as Record<
  (typeof summaryKeys)[number],
  number
>;
const durations: {
  file: string;
  seconds: number;
  passed: boolean;
  group: string;
  /** Seconds from the run's start to the file's, and the CPU's idle share then (a timeline of the run). */
  startedAtSeconds?: number;
  idleAtStart?: number;
}[] = [];
/** When each file started (seconds from the run's start) and how idle the CPU was then. */
const fileStarts = new Map<string, { at: number; idle: number | undefined }>();
const startedAt = Date.now();
let planned = 0;
let numbered = 0;
/** Every failed test (not suite), printed again just before the summary: a CI log shows only its end. */
const failures: { file: string; name: string; message: string }[] = [];

function failureMessage(error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause ?? error;
  const text = cause instanceof Error ? cause.message : String(cause);
  return text.split("\n").slice(0, 12).join("\n");
}

const diagnostic = (message: string): TestEvent => ({
  type: "test:diagnostic",
  data: { nesting: 0, message, file: undefined, line: undefined, column: undefined },
});

/** CPU time (all cores, in USER_HZ ticks) as /proc/stat counts it: idle and in all; undefined off Linux. */
function cpuTicks(): { idle: number; total: number } | undefined {
  if (!existsSync("/proc/stat")) return undefined;
  const fields = /^cpu\s+(.*)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1]?.split(/\s+/).map(Number);
  if (!fields || fields.length < 5) return undefined;
  // user nice system idle iowait irq softirq steal: idle and iowait are time no one wanted the CPU.
  return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total: fields.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** The idle share of the CPU over the last `windowMs`, sampled every second; undefined off Linux. */
class IdleMeter {
  private samples: { at: number; idle: number; total: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly windowMs = 5000) {}
  start(): void {
    const take = () => {
      const t = cpuTicks();
      if (!t) return;
      this.samples.push({ at: Date.now(), ...t });
      while (this.samples.length > 2 && (this.samples[1]?.at ?? 0) <= Date.now() - this.windowMs) {
        this.samples.shift();
      }
    };
    take();
    this.timer = setInterval(take, 1000);
    this.timer.unref();
  }
  stop(): void {
    clearInterval(this.timer);
  }
  /** Undefined until a whole window of samples taken after `since` (ms) is there. */
  idleShare(since = 0): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (first && first.at < since) return undefined;
    if (!first || !last || last.at - first.at < this.windowMs - 1000) return undefined;
    const total = last.total - first.total;
    return total > 0 ? (last.idle - first.idle) / total : undefined;
  }
}

/**
 * Each file its own node:test `run()`, `slots` of them at a time (one more while the machine's CPU
 * is idle enough, see `extraSlots`), their events merged into one stream in the order they come.
 */
async function* runFiles(files: string[], slots: number, extra: number): AsyncGenerator<TestEvent, void> {
  const queue: TestEvent[] = [];
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const pending = [...files];
  let running = 0;
  let extraInUse = 0;
  /** When the last extra file started: the idle share counts only from then on. */
  let lastExtraAt = 0;
  const meter = new IdleMeter();
  if (extra > 0) meter.start();
  const startOne = (asExtra: boolean) => {
    const file = pending.shift();
    if (file === undefined) return;
    running++;
    fileStarts.set(path.join(testDir, file), {
      at: (Date.now() - startedAt) / 1000,
      idle: meter.idleShare(),
    });
    if (asExtra) extraInUse++;
    void (async () => {
      try {
        const stream = run({ files: [path.join(testDir, file)], concurrency: 1, signal: abort.signal });
        for await (const event of stream as AsyncIterable<TestEvent>) {
          queue.push(event);
          notify();
        }
      } finally {
        running--;
        if (asExtra) extraInUse--;
        notify();
      }
    })();
  };
  const admit = () => {
    while (pending.length > 0 && running - extraInUse < slots && !abort.signal.aborted) startOne(false);
    const idle = meter.idleShare(lastExtraAt);
    if (pending.length > 0 && extraInUse < extra && idle !== undefined && idle >= idleShareForExtra) {
      queue.push(diagnostic(`${pending[0]} beside ${running} (CPU ${Math.round(idle * 100)} % idle)`));
      lastExtraAt = Date.now();
      startOne(true);
    }
  };
  admit();
  // Looks again every second for the extra slot, and at once when a file ends or sends an event.
  const ticker = extra > 0 ? setInterval(notify, 1000) : undefined;
  try {
    while (running > 0 || queue.length > 0 || (pending.length > 0 && !abort.signal.aborted)) {
      while (queue.length > 0) yield queue.shift() as TestEvent;
      admit();
      if (queue.length === 0 && (running > 0 || pending.length > 0)) {
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
  } finally {
    clearInterval(ticker);
    meter.stop();
  }
}

/** Both groups' events as one stream; each run's own summary is summed into one at the end. */
async function* events(): AsyncGenerator<TestEvent, void> {
  const groups = [
    { name: "concurrent", files: concurrentFiles, concurrency, extra: extraSlots },
    { name: "alone", files: aloneFiles, concurrency: 1, extra: 0 },
  ];
  for (const group of groups) {
    if (group.files.length === 0 || abort.signal.aborted) continue;
    const upTo =
      group.extra > 0
        ? ` (${group.concurrency + group.extra} while the CPU is ${idleShareForExtra * 100} % idle or more)`
        : "";
    yield diagnostic(`${group.name}: ${group.files.length} files, ${group.concurrency} at a time${upTo}`);
    for await (const event of runFiles(group.files, group.concurrency, group.extra)) {
      if (event.type === "test:diagnostic" && event.data.nesting === 0 && event.data.file === undefined) {
        const [key, value] = event.data.message.split(" ");
        if (summaryKeys.includes(key as (typeof summaryKeys)[number])) {
          totals[key as (typeof summaryKeys)[number]] += Number(value);
        }
        if (key !== "duration_ms" && !summaryKeys.includes(key as (typeof summaryKeys)[number])) yield event;
        continue;
      }
      if (event.type === "test:fail" && event.data.details.type !== "suite") {
        failures.push({
          file: path.relative(repoRoot, event.data.file ?? ""),
          name: event.data.name,
          message: failureMessage(event.data.details.error),
        });
      }
      // One TAP plan and one numbering for all files (each file's run numbers its own from 1).
      if (event.type === "test:plan" && event.data.nesting === 0) {
        planned += event.data.count;
        continue;
      }
      if ((event.type === "test:pass" || event.type === "test:fail") && event.data.nesting === 0) {
        yield { ...event, data: { ...event.data, testNumber: ++numbered } } as TestEvent;
        continue;
      }
      if (event.type === "test:complete" && event.data.nesting === 0 && event.data.name === event.data.file) {
        durations.push({
          file: path.relative(repoRoot, event.data.file ?? ""),
          seconds: Math.round(event.data.details.duration_ms / 100) / 10,
          passed: event.data.details.passed,
          group: group.name,
          startedAtSeconds: fileStarts.get(event.data.file ?? "")?.at,
          idleAtStart: fileStarts.get(event.data.file ?? "")?.idle,
        });
      }
      yield event;
    }
  }
  yield {
    type: "test:plan",
    data: { nesting: 0, count: planned, file: undefined, line: undefined, column: undefined },
  };
  durations.sort((a, b) => b.seconds - a.seconds);
  mkdirSync(path.join(repoRoot, "test-artifacts"), { recursive: true });
  writeFileSync(
    path.join(repoRoot, "test-artifacts", "test-durations.json"),
    `${JSON.stringify({ concurrency, totalSeconds: (Date.now() - startedAt) / 1000, files: durations }, null, 2)}\n`,
  );
  yield diagnostic("slowest files (test-artifacts/test-durations.json):");
  for (const d of durations.slice(0, 10)) {
    yield diagnostic(
      `  ${d.seconds.toFixed(1).padStart(6)} s  ${d.file}${d.group === "alone" ? " (alone)" : ""}`,
    );
  }
  if (failures.length > 0) {
    yield diagnostic(`failed tests (${failures.length}):`);
    for (const f of failures) {
      yield diagnostic(`  ✗ ${f.file} › ${f.name}`);
      for (const line of f.message.split("\n")) yield diagnostic(`      ${line}`);
    }
  }
  for (const key of summaryKeys) yield diagnostic(`${key} ${totals[key]}`);
  yield diagnostic(`duration_ms ${Date.now() - startedAt}`);
}

// node --test's default: spec on a terminal, TAP otherwise (a CI log).
const output = Readable.from(events()).compose(process.stdout.isTTY ? new spec() : tap);
output.pipe(process.stdout);
output.on("end", () => {
  rmSync(synthCache, { recursive: true, force: true });
  rmSync(packageCache, { recursive: true, force: true });
  if (totals.fail > 0 || totals.cancelled > 0 || totals.tests === 0 || abort.signal.aborted) {
    process.exitCode = 1;
  }
});
