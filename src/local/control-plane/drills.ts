import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import type { ResolvedStack, Topology } from "../../stack/index.ts";
import type { StackClient } from "./client.ts";

/** A drill as a page lists it. */
export interface DrillSummary {
  name: string;
  description: string;
}

/** Why a drill cannot start: unknown (404), or not on this topology (409), with what to run instead. */
export interface DrillRefusal {
  status: 404 | 409;
  error: string;
  hint?: string;
}

/**
 * The one way in for drills, given to the control plane from above (the CLI, which knows the
 * drills' registry): the control plane and its dashboard never import a drill. The CLI's
 * `stayup drill` runs drills through the same code (src/drills/runner.ts).
 */
export interface DrillRunner {
  /** The drills that run on `topology`. */
  available(topology: Topology): DrillSummary[];
  /** Why `name` cannot run on `topology`; undefined when it can. */
  refusal(name: string, topology: Topology): DrillRefusal | undefined;
  /** Runs the drill on the stack behind `client` with its default options; saves its report. */
  run(
    name: string,
    context: {
      client: StackClient;
      stack: ResolvedStack;
      stateDir: string;
      onProgress: (message: string) => void;
    },
  ): Promise<{ passed: boolean; reportHtml: string }>;
}

/** A drill started through the control plane, as the page shows it. */
export interface DrillRunState {
  drill: string;
  state: "running" | "passed" | "failed" | "error";
  startedAt: string;
  progress: string[];
  /** The report's URL on the dashboard once written. */
  report?: string;
  error?: string;
}

export interface DrillsState {
  available: DrillSummary[];
  current?: DrillRunState;
  reports: { name: string; url: string; time: string }[];
}

export const reportsDirOf = (stateDir: string) => path.join(stateDir, "reports");

/**
 * `GET /drills` and `POST /drills/<name>`: one drill at a time, run inside the stack's process
 * through its own control plane (as the CLI would); every change of the run goes to `onChange`.
 */
export class DrillDesk {
  private current?: DrillRunState;
  private readonly listeners = new Set<(run: DrillRunState) => void>();

  constructor(
    private readonly runner: DrillRunner | undefined,
    private readonly stack: ResolvedStack,
    private readonly stateDir: string,
    private readonly client: () => StackClient,
  ) {}

  onChange(listener: (run: DrillRunState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(run: DrillRunState): void {
    for (const listener of this.listeners) listener(run);
  }

  state(): DrillsState {
    const dir = reportsDirOf(this.stateDir);
    const reports = existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => f.endsWith(".html"))
          .map((f) => ({
            name: f,
            url: `/dashboard/reports/${f}`,
            time: statSync(path.join(dir, f)).mtime.toISOString(),
          }))
          // ISO times: their code-unit order is their time order (localeCompare would load ICU).
          .sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0))
          .slice(0, 20)
      : [];
    return {
      // Only the drills that run on this stack's topology (see each drill's `topologies`).
      available: this.runner?.available(this.stack.topology) ?? [],
      current: this.current,
      reports,
    };
  }

  /** Starts `name`: 202 and the run, or why not (status and body). */
  start(name: string): { status: number; body: unknown } {
    if (!this.runner) return { status: 503, body: { error: "this stack was started without drills" } };
    const refusal = this.runner.refusal(name, this.stack.topology);
    if (refusal) return { status: refusal.status, body: { error: refusal.error, hint: refusal.hint } };
    if (this.current?.state === "running") {
      return { status: 409, body: { error: `drill ${this.current.drill} is still running` } };
    }
    const run: DrillRunState = {
      drill: name,
      state: "running",
      startedAt: new Date().toISOString(),
      progress: [],
    };
    this.current = run;
    this.changed(run);
    void this.runner
      .run(name, {
        client: this.client(),
        stack: this.stack,
        stateDir: this.stateDir,
        onProgress: (message) => {
          run.progress.push(message);
          this.changed(run);
        },
      })
      .then((result) => {
        run.state = result.passed ? "passed" : "failed";
        run.report = `/dashboard/reports/${path.basename(result.reportHtml)}`;
      })
      .catch((error: Error) => {
        run.state = "error";
        run.error = error.message;
      })
      .finally(() => this.changed(run));
    return { status: 202, body: run };
  }
}
