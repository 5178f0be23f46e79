import { existsSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Dispatcher } from "undici";
import { StayupError } from "../../shared/errors.ts";
import { isProcessAlive as isAlive, isSameProcess } from "../../shared/process-info.ts";
import type { ClientTrafficEvent, TimedStackEvent } from "../events/bus.ts";
import type { FaultInForce } from "../faults/registry.ts";
import type { StackStatus } from "../runtime.ts";
import { type StackStateFile, stateFileName } from "./state-file.ts";
import type { RollResult } from "../rolling-deploy/roll.ts";

/**
 * undici, loaded at the first request: `stayup status` with no stack running makes none, and
 * answers without it (about 0.1 s of CPU less: docs/benchmarks.md).
 */
const request: typeof import("undici").request = async (...args) => (await import("undici")).request(...args);

/** Throws the control plane's reason when it refused the request (token, Host or Origin). */
async function refused(res: Dispatcher.ResponseData): Promise<void> {
  if (res.statusCode !== 401 && res.statusCode !== 403) return;
  refusedWith(res.statusCode, await res.body.json().catch(() => ({})));
}

function refusedWith(statusCode: number, answer: unknown): void {
  if (statusCode !== 401 && statusCode !== 403) return;
  const body = (answer ?? {}) as { reason?: string };
  throw new StayupError(
    `the stack's control plane refused the request: ${body.reason ?? statusCode}`,
    "run the CLI as the user who started the stack, with the same --state-dir",
  );
}

/**
 * A drill's hold on the faults it injects (see FaultRegistry): open while its connection is; the
 * stack clears them when it closes, whether by `release` or by this process dying.
 */
export class FaultLease {
  constructor(
    readonly id: string,
    private readonly client: StackClient,
    private readonly connection: AbortController,
  ) {}

  /** Clears every fault injected under this lease, waits until the stack restored them, and lets go. */
  async release(): Promise<FaultInForce[]> {
    try {
      return await this.client.clearFaults(this.id);
    } finally {
      this.connection.abort();
    }
  }
}

/** Longest wait for the control plane's answer to a read (`status`, `faults`). */
const READ_TIMEOUT_MS = 60_000;

/**
 * A GET answered with JSON, over node:http: the reads `stayup status` makes need no undici, whose
 * loading cost `status` of a running stack about 0.1 s of CPU (issue 25, item 13).
 */
function getJson(
  url: string,
  headers: Record<string, string>,
): Promise<{ statusCode: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, timeout: READ_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve({ statusCode: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
        } catch {
          reject(new StayupError(`the stack's control plane answered ${res.statusCode} with no JSON`));
        }
      });
    });
    req.on("timeout", () =>
      req.destroy(
        new StayupError(`the stack's control plane did not answer within ${READ_TIMEOUT_MS / 1000} s`),
      ),
    );
    req.on("error", reject);
  });
}

/** Talks to a running stack through its control plane. */
export class StackClient {
  /** `lease`: faults this client injects are held under it (see FaultLease). */
  constructor(
    readonly state: StackStateFile,
    readonly lease?: string,
  ) {}

  /** This client, its faults held under `lease`. */
  withLease(lease: FaultLease): StackClient {
    return new StackClient(this.state, lease.id);
  }

  /** Opens a fault lease for a drill (a connection held open; see FaultRegistry). */
  async openFaultLease(drill: string): Promise<FaultLease> {
    const connection = new AbortController();
    const res = await request(
      `${this.state.controlUrl}/faults/lease?${new URLSearchParams({ drill, pid: String(process.pid) })}`,
      { headers: this.headers, signal: connection.signal, bodyTimeout: 0 },
    );
    await refused(res);
    if (res.statusCode !== 200) {
      // A stack from before fault leases: the drill still clears its own faults.
      await res.body.dump();
      return new FaultLease("", this, connection);
    }
    const lines = createInterface({ input: res.body, crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of lines) {
      const lease = (JSON.parse(line) as { lease: string }).lease;
      // The rest of the body never comes; reading stops here, the connection stays open.
      lines.close();
      res.body.on("error", () => undefined);
      return new FaultLease(lease, this, connection);
    }
    throw new StayupError("the stack closed the fault lease at once");
  }

  /** Faults in force in the stack. */
  async faults(): Promise<FaultInForce[]> {
    const res = await getJson(`${this.state.controlUrl}/faults`, this.headers);
    refusedWith(res.statusCode, res.body);
    return (res.body as { faults: FaultInForce[] }).faults;
  }

  /** Restores every fault in force (or those of one lease, closing it); resolves once restored. */
  async clearFaults(lease?: string): Promise<FaultInForce[]> {
    if (lease === "") return [];
    const res = await request(
      `${this.state.controlUrl}/faults/clear${lease ? `?${new URLSearchParams({ lease })}` : ""}`,
      { method: "POST", headers: this.headers, headersTimeout: 0, bodyTimeout: 0 },
    );
    await refused(res);
    const body = (await res.body.json()) as { cleared?: FaultInForce[]; error?: string };
    if (res.statusCode !== 200 || !body.cleared) {
      throw new StayupError(`clearing the faults failed: ${body.error ?? res.statusCode}`);
    }
    return body.cleared;
  }

  private get headers(): Record<string, string> {
    return { authorization: `Bearer ${this.state.token}` };
  }

  /** The stack running from this state directory, or undefined (a stale state file is removed). */
  static find(stateDir: string): StackClient | undefined {
    const file = path.join(stateDir, stateFileName);
    if (!existsSync(file)) return undefined;
    const state = JSON.parse(readFileSync(file, "utf8")) as StackStateFile;
    // Gone, or its pid now names another process (the runtime was killed, the pid reused).
    if (state.processStart ? !isSameProcess(state.pid, state.processStart) : !isAlive(state.pid)) {
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
    const res = await getJson(`${this.state.controlUrl}/status`, this.headers);
    refusedWith(res.statusCode, res.body);
    return res.body as StackStatus;
  }

  /** Injects a fault (see ControlPlaneServer.fault); throws with the server's reason if refused. */
  async fault(name: string, params: Record<string, string> = {}): Promise<Record<string, unknown>> {
    const query = new URLSearchParams(this.lease ? { ...params, lease: this.lease } : params).toString();
    const res = await request(`${this.state.controlUrl}/faults/${name}${query ? `?${query}` : ""}`, {
      method: "POST",
      headers: this.headers,
    });
    const body = (await res.body.json()) as Record<string, unknown>;
    if (res.statusCode !== 200) throw new StayupError(`fault ${name} refused: ${JSON.stringify(body)}`);
    return body;
  }

  /**
   * A rolling deploy to the version `settings` make (see roll-route.ts); resolves when it is over.
   * `id` names it for stopRoll; `signal` aborting closes the request, which stops the roll with
   * rollback (as this process ending does).
   */
  async roll(
    settings: Record<string, string>,
    options: { keepSettings?: boolean; id?: string; signal?: AbortSignal } = {},
  ): Promise<RollResult> {
    const res = await request(`${this.state.controlUrl}/roll`, {
      method: "POST",
      headers: { ...this.headers, "content-type": "application/json" },
      body: JSON.stringify({
        settings,
        ...(options.keepSettings ? { keepSettings: true } : {}),
        ...(options.id ? { id: options.id } : {}),
      }),
      headersTimeout: 0,
      bodyTimeout: 0,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const body = (await res.body.json()) as RollResult & { error?: string; fix?: string };
    if (res.statusCode !== 200) throw new StayupError(`roll refused: ${body.error}`, body.fix);
    return body;
  }

  /**
   * Stops the roll under way (only the one named `id`, if given) with rollback: resolves with its
   * result once the stack is back on the version the roll started from; undefined if no roll (or
   * not that one) is under way. `reason` is said in the stack's events.
   */
  async stopRoll(options: { id?: string; reason?: string } = {}): Promise<RollResult | undefined> {
    const query = new URLSearchParams({
      ...(options.id ? { id: options.id } : {}),
      ...(options.reason ? { reason: options.reason } : {}),
    }).toString();
    const res = await request(`${this.state.controlUrl}/roll/stop${query ? `?${query}` : ""}`, {
      method: "POST",
      headers: this.headers,
      // The rollback is bounded by the stack (2 min per region); this waits for it.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    await refused(res);
    const body = (await res.body.json()) as RollResult & { error?: string; fix?: string };
    if (res.statusCode === 409) return undefined;
    if (res.statusCode !== 200) throw new StayupError(`stopping the roll failed: ${body.error}`, body.fix);
    return body;
  }

  /**
   * Reports what a client of the stack saw (see client-traffic-route.ts); resolves once the stack
   * published it. Throws if it was not (the caller keeps the seconds and sends them again).
   */
  async reportClientTraffic(report: Omit<ClientTrafficEvent, "type">, timeoutMs = 5000): Promise<void> {
    const res = await request(`${this.state.controlUrl}/client-traffic`, {
      method: "POST",
      headers: { ...this.headers, "content-type": "application/json" },
      body: JSON.stringify(report),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await refused(res);
    const body = (await res.body.json().catch(() => ({}))) as { error?: string };
    if (res.statusCode !== 202)
      throw new StayupError(`the stack did not take the client's figures: ${body.error ?? res.statusCode}`);
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
