import { randomUUID } from "node:crypto";
import type http from "node:http";
import path from "node:path";
import { bundleWebService } from "../../web-service/bundle.ts";
import { serviceFolderOf } from "../../web-service/version.ts";
import { instanceSettingsProblems, rollBodyLimitBytes } from "../rolling-deploy/instance-settings.ts";
import { defaultBodyDeadlineMs, readBoundedBody, refuseBody } from "./body.ts";
import { type RegionVersion, type RollResult, revertStack, rollStack } from "../rolling-deploy/roll.ts";
import type { LocalRegion } from "../region.ts";
import type { LocalStack } from "../runtime.ts";
import { SingleInstanceLocalStack } from "../single-instance/stack.ts";

/** A roll's id as a client may name it (`POST /roll {"id"}`): to stop that roll and no other. */
const rollIdPattern = /^[A-Za-z0-9_-]{1,64}$/;

/** A roll's result, and what rolls it back once it completed (what each region ran before). */
interface Rolled {
  result: RollResult;
  revert?: (reason: string) => Promise<RollResult>;
}

/**
 * The roll under way: one at a time (two would fight over the group's version), and what stops it
 * (`POST /roll/stop`, or its requester going away).
 */
export class RollDesk {
  private current?: { id: string; startedAt: string; stop: AbortController; done: Promise<RollResult> };
  /** The last roll, once completed (not rolled back), while nothing rolled since: what reverts it. */
  private last?: { id: string; revert: (reason: string) => Promise<RollResult> };
  /** The rollback of the completed roll `id` while under way (a second stop of it answers the same). */
  private reverting?: { id: string; done: Promise<RollResult> };
  /** Why the desk closed (the stack is stopping): no roll begins, held answers end. */
  private closedBecause?: string;
  private announceClosed: (reason: string) => void = () => undefined;
  /** Resolves with the reason once the desk closed (see close). */
  readonly closed = new Promise<string>((resolve) => (this.announceClosed = resolve));

  /**
   * The stack is stopping: the roll under way is stopped, no other begins, and the requests held
   * for a roll's answer are answered now (503), not when the roll ends: the control plane's close
   * waits for every request, and a roll can take minutes (`stayup down` gave up after 30 s).
   */
  close(reason: string): void {
    if (this.closedBecause !== undefined) return;
    this.closedBecause = reason;
    this.current?.stop.abort(reason);
    this.announceClosed(reason);
  }

  /** The roll under way, if any. */
  underWay(): { id: string; startedAt: string } | undefined {
    return this.current && { id: this.current.id, startedAt: this.current.startedAt };
  }

  /**
   * Runs `roll` as the roll under way, or answers undefined if one already is. What `roll` gives as
   * `revert` rolls it back once it completed (see stop).
   */
  begin(
    id: string,
    roll: (signal: AbortSignal) => Promise<Rolled>,
  ): { stop: AbortController; done: Promise<RollResult> } | undefined {
    if (this.current || this.closedBecause !== undefined) return undefined;
    this.last = undefined;
    this.reverting = undefined;
    const stop = new AbortController();
    const done = roll(stop.signal)
      .then(({ result, revert }) => {
        if (revert && !result.rolledBack && result.fromVersion !== result.toVersion)
          this.last = { id, revert };
        return result;
      })
      .finally(() => {
        if (this.current?.id === id) this.current = undefined;
      });
    this.current = { id, startedAt: new Date().toISOString(), stop, done };
    // The requester hears of a failure through its own answer; this handle must not throw it again.
    done.catch(() => undefined);
    return { stop, done };
  }

  /**
   * Stops the roll under way (`id`: only if it is that one) with rollback, `reason` said as the
   * rollback's; resolves with its result once rolled back. The roll named `id` already completed,
   * and nothing rolled since (its requester had not heard the answer yet, or was interrupted just
   * after): rolled back the same way, as a roll of its own. Undefined when there is none to stop.
   */
  stop(reason: string, id?: string): Promise<RollResult> | undefined {
    if (id !== undefined && this.reverting?.id === id) return this.reverting.done;
    const current = this.current;
    if (current && (id === undefined || current.id === id)) {
      current.stop.abort(reason);
      // It may complete before it sees the stop (its last step had begun): rolled back then as a
      // completed roll is, so a stop always ends on the version the roll started from.
      return current.done.then((result) => this.revert(current.id, reason) ?? result);
    }
    if (current || id === undefined) return undefined;
    return this.revert(id, reason);
  }

  /** The completed roll `id` rolled back (see stop), or its rollback already under way; else undefined. */
  private revert(id: string, reason: string): Promise<RollResult> | undefined {
    const last = this.last;
    if (last?.id !== id) return undefined;
    this.last = undefined;
    const done = this.begin(`${id}-rollback`, async () => ({
      result: await last.revert(`stopped after it completed: ${reason}`),
    }))?.done;
    if (!done) return undefined;
    // While it runs, a second stop of the roll answers it; once over, there is nothing to stop.
    this.reverting = { id, done };
    const over = () => {
      if (this.reverting?.done === done) this.reverting = undefined;
    };
    done.then(over, over);
    return done;
  }
}

/**
 * Answers a request held for a roll's result (`POST /roll`, `POST /roll/stop`): 200 with it, 500
 * with the roll's error, or 503 at once when the desk closes first (the stack is stopping: the roll
 * was stopped, its end is not waited for; the connection is closed with the answer).
 */
async function answerRoll(
  desk: RollDesk,
  done: Promise<RollResult>,
  res: http.ServerResponse,
  failed: (message: string) => { error: string; fix: string },
): Promise<void> {
  const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  try {
    const answer = await Promise.race([
      done.then((result) => ({ result })),
      desk.closed.then((reason) => ({ closed: reason })),
    ]);
    if ("result" in answer) return reply(200, answer.result);
    reply(
      503,
      {
        error: `the stack is stopping (${answer.closed}): the roll was stopped, its rollback not waited for`,
        fix: "`stayup up` starts the stack again (its instances on the version they were launched with); roll once it runs",
      },
      { connection: "close" },
    );
  } catch (error) {
    reply(500, failed((error as Error).message));
  }
}

/**
 * POST /roll/stop?id=&reason=: stops the roll under way with rollback (CodeDeploy's StopDeployment
 * with rollback): it launches no more of the new version and deploys back the one it started from,
 * in every region it rolled. Answers its result once rolled back; 409 when no roll (or not the one
 * named) is under way.
 */
export async function handleRollStop(desk: RollDesk, url: URL, res: http.ServerResponse): Promise<void> {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const id = url.searchParams.get("id") ?? undefined;
  // Said in the stack's events: short, one line.
  const given = (url.searchParams.get("reason") ?? "")
    .replace(/[^\x20-\x7e]/g, " ")
    .slice(0, 200)
    .trim();
  const stopped = desk.stop(given || "asked through the control plane (POST /roll/stop)", id);
  if (!stopped) {
    const underWay = desk.underWay();
    return reply(409, {
      error: underWay ? `the roll under way is ${underWay.id}, not ${id}` : "no roll is under way",
      fix: underWay
        ? "stop it without an id (`stayup roll --stop`)"
        : "nothing to stop: `stayup status` shows the version running",
    });
  }
  await answerRoll(desk, stopped, res, (message) => ({
    error: `the roll's rollback failed: ${message}`,
    fix: "`stayup status` shows the version each instance runs; roll again to the one wanted (`stayup roll`)",
  }));
}

/**
 * POST /roll {"settings": {...}}: a rolling deploy of every region's group to the version those
 * instance settings make (region by region, see rollStack); answers the roll's result, with one
 * entry per region, once it finished or was rolled back. Only instance settings: a name that changes
 * how a process loads code, or that stayup sets itself, is refused with 400 and the reason
 * (instance-settings.ts); a body over rollBodyLimitBytes with 413, one that has not arrived within
 * the deadline with 408 (body.ts); a roll while another is under way with 409. `id` (optional) names
 * the roll for `POST /roll/stop`. The request's connection closing before its answer stops the roll
 * with rollback: its requester is gone (Ctrl-C, a crash), and a roll nobody waits for is not left
 * half done, nor finished unheard.
 */
export async function handleRoll(
  stack: LocalStack,
  desk: RollDesk,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  bodyDeadlineMs = defaultBodyDeadlineMs,
) {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  // A bounded body: settings are a few short strings; a bigger or a trickled body is refused, not
  // buffered or waited for.
  const read = await readBoundedBody(req, { limitBytes: rollBodyLimitBytes, deadlineMs: bodyDeadlineMs });
  if (!read.ok) return refuseBody(res, read);
  const body = read.text;
  let settings: Record<string, string>;
  let id: string = randomUUID();
  try {
    const parsed = JSON.parse(body || "{}") as { settings?: unknown; keepSettings?: unknown; id?: unknown };
    if (parsed.id !== undefined) {
      if (typeof parsed.id !== "string" || !rollIdPattern.test(parsed.id))
        return reply(400, { error: "id must be 1 to 64 letters, digits, - or _" });
      id = parsed.id;
    }
    const given = parsed.settings ?? {};
    if (typeof given !== "object" || given === null || Array.isArray(given)) {
      return reply(400, { error: "settings must be an object of strings" });
    }
    const problems = instanceSettingsProblems(given as Record<string, unknown>);
    if (problems.length > 0) return reply(400, { error: problems.join("; "), problems });
    settings = given as Record<string, string>;
    // `keepSettings`: on top of the settings the group runs with (an earlier `roll --set`), as
    // `stayup up` asks, so that bringing a stack up to date does not undo them.
    if (parsed.keepSettings === true && !(stack instanceof SingleInstanceLocalStack)) {
      settings = { ...stack.primary.group.versionSettings, ...settings };
    }
  } catch {
    return reply(400, { error: 'the body must be JSON: {"settings": {"NAME": "value"}}' });
  }
  const started = desk.begin(id, async (signal) => {
    // The bundle is rebuilt, so a code change is a new version too (its own folder: running
    // instances keep the file they started from).
    const artifact = await bundleWebService(
      path.join(stack.options.stateDir, "build", `roll-${Date.now()}`),
      {
        codeCache: stack instanceof SingleInstanceLocalStack,
      },
    );
    if (stack instanceof SingleInstanceLocalStack)
      return {
        result: await stack.roll(artifact, settings, signal),
        revert: (reason: string) => stack.revertRoll(reason),
      };
    const regions = [stack.primary, stack.secondary].filter((r): r is LocalRegion => r !== undefined);
    // The user's service is its folder: a change there is a new version (not only the bundle's).
    const serviceFolder = serviceFolderOf(stack.options.stack.webService.start, stack.options.stateDir);
    const found = new Map<string, RegionVersion>();
    const result = await rollStack(
      regions,
      stack.events,
      { settings, artifact, serviceFolder, signal },
      found,
    );
    return {
      result,
      revert: (reason: string) => revertStack(regions, stack.events, found, result, reason),
    };
  });
  if (!started) {
    const underWay = desk.underWay();
    if (!underWay)
      return reply(503, {
        error: "the stack is stopping: no roll begins",
        fix: "`stayup up` starts the stack again; roll once it runs",
      });
    return reply(409, {
      error: `a roll is under way (${underWay?.id}, since ${underWay?.startedAt})`,
      fix: "wait for it to end, or stop it with rollback (`stayup roll --stop`), then roll again",
    });
  }
  // Its requester gone before the answer: stopped with rollback (it may have gone already).
  const requesterGone = "its requester went away (the roll request's connection closed)";
  if (res.destroyed || req.socket.destroyed) started.stop.abort(requesterGone);
  res.on("close", () => {
    if (!res.writableFinished) started.stop.abort(requesterGone);
  });
  await answerRoll(desk, started.done, res, (message) => ({
    error: message,
    fix: "`stayup status` shows the version each instance runs; fix what the error names, then roll again",
  }));
}
