import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { type Dispatcher, request } from "undici";
import { StayupError } from "../../shared/errors.ts";
import type { TimedStackEvent } from "../events/bus.ts";
import type { StackStatus } from "../runtime.ts";
import { type StackStateFile, stateFileName } from "./state-file.ts";
import type { RollResult } from "../rolling-deploy/roll.ts";

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Throws the control plane's reason when it refused the request (token, Host or Origin). */
async function refused(res: Dispatcher.ResponseData): Promise<void> {
  if (res.statusCode !== 401 && res.statusCode !== 403) return;
  const body = (await res.body.json().catch(() => ({}))) as { reason?: string };
  throw new StayupError(
    `the stack's control plane refused the request: ${body.reason ?? res.statusCode}`,
    "run the CLI as the user who started the stack, with the same --state-dir",
  );
}

/** Talks to a running stack through its control plane. */
export class StackClient {
  constructor(readonly state: StackStateFile) {}

  private get headers(): Record<string, string> {
    return { authorization: `Bearer ${this.state.token}` };
  }

  /** The stack running from this state directory, or undefined (a stale state file is removed). */
  static find(stateDir: string): StackClient | undefined {
    const file = path.join(stateDir, stateFileName);
    if (!existsSync(file)) return undefined;
    const state = JSON.parse(readFileSync(file, "utf8")) as StackStateFile;
    if (!isAlive(state.pid)) {
      rmSync(file, { force: true });
      return undefined;
    }
    return new StackClient(state);
  }

  static require(stateDir: string): StackClient {
    const client = StackClient.find(stateDir);
    if (!client) {
      throw new StayupError(
        `no stack is running from ${path.resolve(stateDir)}`,
        "start one with `stayup up --detach` (or `npm start` in another terminal)",
      );
    }
    return client;
  }

  async status(): Promise<StackStatus> {
    const res = await request(`${this.state.controlUrl}/status`, { headers: this.headers });
    await refused(res);
    return (await res.body.json()) as StackStatus;
  }

  /** Injects a fault (see ControlPlaneServer.fault); throws with the server's reason if refused. */
  async fault(name: string, params: Record<string, string> = {}): Promise<Record<string, unknown>> {
    const query = new URLSearchParams(params).toString();
    const res = await request(`${this.state.controlUrl}/faults/${name}${query ? `?${query}` : ""}`, {
      method: "POST",
      headers: this.headers,
    });
    const body = (await res.body.json()) as Record<string, unknown>;
    if (res.statusCode !== 200) throw new StayupError(`fault ${name} refused: ${JSON.stringify(body)}`);
    return body;
  }

  /** A rolling deploy to the version `settings` make (see roll-route.ts); resolves when it is over. */
  async roll(settings: Record<string, string>): Promise<RollResult> {
    const res = await request(`${this.state.controlUrl}/roll`, {
      method: "POST",
      headers: { ...this.headers, "content-type": "application/json" },
      body: JSON.stringify({ settings }),
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const body = (await res.body.json()) as RollResult & { error?: string; fix?: string };
    if (res.statusCode !== 200) throw new StayupError(`roll refused: ${body.error}`, body.fix);
    return body;
  }

  /** Asks the stack to stop and waits until its process has exited. */
  async shutdown(timeoutMs = 30_000): Promise<void> {
    const res = await request(`${this.state.controlUrl}/shutdown`, {
      method: "POST",
      headers: this.headers,
    });
    await refused(res);
    await res.body.dump();
    const deadline = Date.now() + timeoutMs;
    while (isAlive(this.state.pid)) {
      if (Date.now() > deadline)
        throw new StayupError(`stack (pid ${this.state.pid}) did not stop within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Every event after `since`, then live ones, until the signal aborts. */
  async *events(signal: AbortSignal, since = 0): AsyncGenerator<TimedStackEvent> {
    const res = await request(`${this.state.controlUrl}/events?since=${since}`, {
      signal,
      headers: this.headers,
    });
    await refused(res);
    const lines = createInterface({ input: res.body, crlfDelay: Number.POSITIVE_INFINITY });
    try {
      for await (const line of lines) if (line.trim()) yield JSON.parse(line) as TimedStackEvent;
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  }
}
