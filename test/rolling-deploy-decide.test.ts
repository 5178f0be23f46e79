import assert from "node:assert/strict";
import type http from "node:http";
import { describe, it } from "node:test";
import {
  decide,
  defaultGroupPolicy,
  type GroupState,
  type ObservedInstance,
} from "../src/local/instance-group/decide.ts";
import { onVersion, rollbackProgress } from "../src/drills/rolling-deploy.ts";
import { rollStoppable } from "../src/cli/commands/roll/index.ts";
import type { StackClient } from "../src/local/control-plane/client.ts";
import { handleRollStop, RollDesk } from "../src/local/control-plane/roll-route.ts";
import {
  planStackRoll,
  type RollResult,
  regionsToRollBack,
  rolledOnto,
  stopReason,
} from "../src/local/rolling-deploy/roll.ts";

const policy = defaultGroupPolicy;
const instance = (id: string, az: string, version: string, over: Partial<ObservedInstance> = {}) =>
  ({
    instanceId: id,
    az,
    lifecycle: "running",
    health: "healthy",
    launchedAt: 0,
    everHealthy: true,
    version,
    ...over,
  }) satisfies ObservedInstance;
const state = (instances: ObservedInstance[], version: string): GroupState => ({
  desired: 2,
  availabilityZones: ["z-a", "z-b"],
  impairedZones: [],
  instances,
  launchFailures: { consecutive: 0 },
  version,
});

describe("rolling deploy decisions (pure)", () => {
  it("a new version launches a replacement per healthy old instance first and terminates nothing yet", () => {
    const d = decide(state([instance("a", "z-a", "v1"), instance("b", "z-b", "v1")], "v2"), policy, 0);
    assert.deepEqual(d.terminate, []);
    assert.deepEqual(d.launch.map((l) => [l.az, l.replaces]).sort(), [
      ["z-a", "a"],
      ["z-b", "b"],
    ]);
  });

  it("an old instance goes only once its replacement of the new version is healthy", () => {
    const starting = instance("n", "z-a", "v2", { health: "initial", everHealthy: false, replaces: "a" });
    const waiting = decide(state([instance("a", "z-a", "v1"), starting], "v2"), policy, 1000);
    assert.deepEqual(waiting.terminate, []);
    const ready = decide(
      state([instance("a", "z-a", "v1"), { ...starting, health: "healthy", everHealthy: true }], "v2"),
      policy,
      2000,
    );
    assert.deepEqual(
      ready.terminate.map((t) => t.instanceId),
      ["a"],
    );
  });

  it("instances of the current version are left alone", () => {
    const d = decide(state([instance("a", "z-a", "v2"), instance("b", "z-b", "v2")], "v2"), policy, 0);
    assert.deepEqual(d, { launch: [], terminate: [], held: [] });
  });

  it("rollback: the new version's never-healthy instance goes at once, the old one it was replacing stays", () => {
    const broken = instance("n", "z-a", "v2", { health: "unhealthy", everHealthy: false, replaces: "a" });
    const d = decide(
      state([instance("a", "z-a", "v1"), instance("b", "z-b", "v1"), broken], "v1"),
      policy,
      0,
    );
    assert.deepEqual(
      d.terminate.map((t) => t.instanceId),
      ["n"],
    );
    assert.deepEqual(d.launch, []);
  });
});

describe("a stack roll's plan: every region with running instances, the primary first", () => {
  it("rolls a warm secondary after the primary", () => {
    assert.deepEqual(
      planStackRoll([
        { name: "us-east-1", role: "secondary", runningInstances: 1 },
        { name: "eu-west-3", role: "primary", runningInstances: 3 },
      ]),
      [
        { region: "eu-west-3", action: "roll" },
        { region: "us-east-1", action: "roll" },
      ],
    );
  });

  it("only sets the version of a region with no instance running (a pilot light)", () => {
    assert.deepEqual(
      planStackRoll([
        { name: "eu-west-3", role: "primary", runningInstances: 2 },
        { name: "us-east-1", role: "secondary", runningInstances: 0 },
      ]),
      [
        { region: "eu-west-3", action: "roll" },
        { region: "us-east-1", action: "set-version" },
      ],
    );
  });

  it("after a failover the secondary has the instances: it is rolled, the emptied primary only takes the version", () => {
    assert.deepEqual(
      planStackRoll([
        { name: "eu-west-3", role: "primary", runningInstances: 0 },
        { name: "us-east-1", role: "secondary", runningInstances: 3 },
      ]),
      [
        { region: "eu-west-3", action: "set-version" },
        { region: "us-east-1", action: "roll" },
      ],
    );
  });
});

describe("a roll stopped halfway (stop with rollback): what happens to each instance (pure)", () => {
  // Mid-roll, then the group told the version it started from (v1) again: decide.ts is the one
  // rollback path, for a broken version and for a stopped roll alike.
  it("an instance of the new version that never served goes at once; the old one it was replacing stays", () => {
    const starting = instance("n", "z-a", "v2", { health: "initial", everHealthy: false, replaces: "a" });
    const d = decide(
      state([instance("a", "z-a", "v1"), instance("b", "z-b", "v1"), starting], "v1"),
      policy,
      0,
    );
    assert.deepEqual(
      d.terminate.map((t) => t.instanceId),
      ["n"],
    );
    assert.deepEqual(d.launch, []);
  });

  it("a healthy instance of the new version is replaced launch first: it serves until an old-version one is healthy", () => {
    // Zone z-a already rolled (its old instance drained); z-b not yet.
    const rolled = instance("n", "z-a", "v2");
    const d = decide(state([rolled, instance("b", "z-b", "v1")], "v1"), policy, 0);
    assert.deepEqual(d.terminate, [], "nothing of the new version goes before its replacement serves");
    assert.deepEqual(
      d.launch.map((l) => [l.az, l.replaces]),
      [["z-a", "n"]],
    );
    const back = instance("o", "z-a", "v1", { health: "healthy", everHealthy: true, replaces: "n" });
    const next = decide(state([rolled, back, instance("b", "z-b", "v1")], "v1"), policy, 1000);
    assert.deepEqual(
      next.terminate.map((t) => t.instanceId),
      ["n"],
    );
  });

  it("an old instance already draining when the roll stopped is not taken back: a new one of the old version takes its place", () => {
    const draining = instance("a", "z-a", "v1", { lifecycle: "terminating" });
    const d = decide(
      state([draining, instance("n", "z-a", "v2"), instance("b", "z-b", "v1")], "v1"),
      policy,
      0,
    );
    assert.deepEqual(d.terminate, []);
    assert.deepEqual(
      d.launch.map((l) => [l.az, l.replaces]),
      [["z-a", "n"]],
    );
  });
});

describe("when a roll (or its rollback) has ended (pure)", () => {
  const on = (version: string, over: { healthy?: boolean; terminating?: boolean } = {}) => ({
    version,
    healthy: true,
    terminating: false,
    ...over,
  });
  it("every instance on the version, desired of them healthy", () => {
    assert.equal(rolledOnto([on("v1"), on("v1")], "v1", 2), true);
  });
  it("not while an instance of another version is still draining", () => {
    assert.equal(rolledOnto([on("v1"), on("v1"), on("v2", { terminating: true })], "v1", 2), false);
  });
  it("not while fewer than desired serve", () => {
    assert.equal(rolledOnto([on("v1"), on("v1", { healthy: false })], "v1", 2), false);
    assert.equal(rolledOnto([on("v1"), on("v1", { terminating: true })], "v1", 2), false);
  });
  it("a region with nothing desired (a pilot light) is on any version it is told", () => {
    assert.equal(rolledOnto([], "v1", 0), true);
  });
});

describe("a stopped stack roll: which regions go back (pure)", () => {
  const r = (
    region: string,
    outcome: "rolled" | "version-set" | "not-rolled",
    over: { rolledBack?: boolean; fromVersion?: string; toVersion?: string } = {},
  ) => ({ region, outcome, rolledBack: false, fromVersion: "v1", toVersion: "v2", ...over });

  it("a region rolled before the stop goes back; the one rolled back by the stop and those not reached stay", () => {
    assert.deepEqual(
      regionsToRollBack([
        r("eu-west-3", "rolled"),
        r("us-east-1", "rolled", { rolledBack: true }),
        r("ap-south-1", "not-rolled"),
      ]),
      ["eu-west-3"],
    );
  });
  it("a pilot light given the new version is given the old one back", () => {
    assert.deepEqual(regionsToRollBack([r("eu-west-3", "rolled"), r("us-east-1", "version-set")]), [
      "eu-west-3",
      "us-east-1",
    ]);
  });
  it("a region that was already at the new version has nothing to go back to", () => {
    assert.deepEqual(regionsToRollBack([r("eu-west-3", "rolled", { fromVersion: "v2" })]), []);
  });
  it("the stop's reason is said as the rollback's", () => {
    const stop = new AbortController();
    stop.abort("the drill was interrupted (SIGINT)");
    assert.equal(stopReason(stop.signal), "stopped: the drill was interrupted (SIGINT)");
    const bare = new AbortController();
    bare.abort();
    assert.equal(stopReason(bare.signal), "stopped: its requester asked");
  });
});

describe("the rolling-deploy drill's view of a rollback (pure)", () => {
  const i = (version: string | undefined, healthy = true) => ({
    id: "i",
    az: "z",
    pid: 1,
    port: 1,
    state: "in-service",
    health: healthy ? "healthy" : "initial",
    healthy,
    version,
  });
  it("back on the version found only when the group and every instance run it", () => {
    assert.equal(onVersion({ version: "v1", instances: [i("v1"), i("v1")] }, "v1"), true);
    assert.equal(onVersion({ version: "v1", instances: [i("v1"), i("v2")] }, "v1"), false);
    assert.equal(onVersion({ version: "v2", instances: [i("v1"), i("v1")] }, "v1"), false);
    assert.equal(onVersion({ version: "v1", instances: [] }, "v1"), false, "no instance serves it");
    assert.equal(onVersion({ version: "v1", instances: [i(undefined)] }, "v1"), false);
  });
  it("says how many instances run the version found and how many of the new one are left", () => {
    assert.equal(
      rollbackProgress({ version: "v1", instances: [i("v1"), i("v1", false), i("v2")] }, "v1"),
      "rolling back to v1: 2 instance(s) on it (1 healthy), 1 of the new version still to go",
    );
  });
});

describe("the control plane's roll desk: a stop always ends on the version found", () => {
  const completed: RollResult = {
    fromVersion: "v1",
    toVersion: "v2",
    instancesReplaced: ["i-1"],
    rolledBack: false,
    durationSeconds: 1,
  };
  /**
   * A roll whose last step had begun when the stop came: it completes without seeing the signal
   * (`finish`); its rollback ends on `back`.
   */
  const finishingRoll = (reverted: string[]) => {
    let finish = () => {};
    const finished = new Promise<void>((resolve) => (finish = resolve));
    let back = () => {};
    const wentBack = new Promise<void>((resolve) => (back = resolve));
    const roll = async () => {
      await finished;
      return {
        result: completed,
        revert: async (reason: string): Promise<RollResult> => {
          reverted.push(reason);
          await wentBack;
          return { ...completed, instancesReplaced: [], rolledBack: true, stopped: true, reason };
        },
      };
    };
    return { roll, finish, back };
  };

  it("a roll that completes before it sees the stop is rolled back, and the stop answers that", async () => {
    const desk = new RollDesk();
    const reverted: string[] = [];
    const { roll, finish, back } = finishingRoll(reverted);
    const started = desk.begin("r1", roll);
    assert.ok(started);
    const stopping = desk.stop("Ctrl-C", "r1");
    assert.ok(stopping, "the roll under way is stopped");
    assert.equal(started.stop.signal.aborted, true);
    finish();
    await started.done;
    // A second stop of the same roll meanwhile (the requester's, then the drill's) answers the
    // same rollback.
    const again = desk.stop("again", "r1");
    back();
    const answer = await stopping;
    assert.deepEqual(reverted, ["stopped after it completed: Ctrl-C"]);
    assert.equal(answer.stopped, true);
    assert.equal(answer.rolledBack, true);
    assert.equal(await again, answer);
    assert.equal(reverted.length, 1, "rolled back once");
    assert.equal(desk.underWay(), undefined);
    assert.equal(desk.stop("late", "r1"), undefined, "rolled back: nothing left to stop");
  });

  it("a roll stopped by its id after it completed is rolled back once; an unknown id is refused", async () => {
    const desk = new RollDesk();
    const reverted: string[] = [];
    const { roll, finish, back } = finishingRoll(reverted);
    const started = desk.begin("r2", roll);
    finish();
    back();
    assert.deepEqual(await started?.done, completed);
    assert.equal(desk.stop("late", "other"), undefined);
    assert.equal(desk.stop("late"), undefined, "no roll under way, none named");
    assert.equal((await desk.stop("late", "r2"))?.stopped, true);
    assert.deepEqual(reverted, ["stopped after it completed: late"]);
  });
});

describe("POST /roll/stop answers a failed rollback with its fix", () => {
  it("500 with error and fix", async () => {
    const desk = new RollDesk();
    desk.begin("r3", async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw new Error("the group is gone");
    });
    const answer: { status?: number; body?: string } = {};
    const res = {
      writeHead: (status: number) => (answer.status = status),
      end: (body: string) => (answer.body = body),
    } as unknown as http.ServerResponse;
    await handleRollStop(desk, new URL("http://127.0.0.1/roll/stop?id=r3"), res);
    assert.equal(answer.status, 500);
    const body = JSON.parse(answer.body ?? "{}") as { error?: string; fix?: string };
    assert.match(body.error ?? "", /the group is gone/);
    assert.match(body.fix ?? "", /stayup status/);
  });
});

describe("stayup roll interrupted before the stack took its roll", () => {
  it("the stop is asked again until the stack has the roll: one that completed meanwhile is rolled back", async () => {
    const completed: RollResult = {
      fromVersion: "v1",
      toVersion: "v2",
      instancesReplaced: ["i-1"],
      rolledBack: false,
      durationSeconds: 1,
    };
    let finish = (_: RollResult) => {};
    const stops: (string | undefined)[] = [];
    // The stack as the client sees it: the first stop comes before the roll's request was read
    // (409: none under way); the roll then completes; a stop naming it after that rolls it back.
    const client = {
      roll: () => new Promise<RollResult>((resolve) => (finish = resolve)),
      stopRoll: async ({ id }: { id?: string }) => {
        stops.push(id);
        if (stops.length === 1) {
          finish(completed);
          return undefined;
        }
        return { ...completed, instancesReplaced: [], rolledBack: true, stopped: true };
      },
    } as unknown as StackClient;
    const rolled = rollStoppable(client, {});
    process.emit("SIGINT", "SIGINT");
    const { result, interrupted } = await rolled;
    assert.equal(interrupted, "SIGINT");
    assert.equal(stops.length, 2, "asked again once the roll had answered");
    assert.equal(result.stopped, true, "the completed roll was rolled back, not left on v2");
  });
});

describe("the roll desk closed (the stack stopping) answers what it holds at once", () => {
  it("a held POST /roll/stop is answered 503 with a fix, the roll stopped, and no roll begins after", async () => {
    const desk = new RollDesk();
    let signal: AbortSignal | undefined;
    // A roll that never ends by itself (its rollback would wait on a stack that is stopping).
    desk.begin("r4", (s) => {
      signal = s;
      return new Promise<never>(() => undefined);
    });
    const answer: { status?: number; body?: string; headers?: Record<string, string> } = {};
    const res = {
      headersSent: false,
      destroyed: false,
      writeHead: (status: number, headers: Record<string, string>) => {
        answer.status = status;
        answer.headers = headers;
      },
      end: (body: string) => (answer.body = body),
    } as unknown as http.ServerResponse;
    const held = handleRollStop(desk, new URL("http://127.0.0.1/roll/stop"), res);
    desk.close("the control plane is closing");
    await held;
    assert.equal(answer.status, 503);
    assert.equal(answer.headers?.connection, "close", "the connection does not hold the close up");
    const body = JSON.parse(answer.body ?? "{}") as { error?: string; fix?: string };
    assert.match(body.error ?? "", /the stack is stopping/);
    assert.match(body.fix ?? "", /stayup up/);
    assert.equal(signal?.aborted, true, "the roll under way was stopped");
    assert.equal(
      desk.begin("r5", () => Promise.reject(new Error("must not run"))),
      undefined,
      "no roll begins once closed",
    );
  });
});
