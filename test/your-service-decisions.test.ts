/**
 * Issue 23's decisions without processes: the Redis primary endpoint's (which primary, when to cut
 * connections, when to refuse one), how a service command is started, what drills read of an
 * answer and what they can measure, and the description's new webService fields.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { trafficPlan } from "../src/drills/harness.ts";
import { assertRunsOnService } from "../src/drills/module.ts";
import { drills } from "../src/drills/registry.ts";
import { parseAnswer } from "../src/drills/traffic.ts";
import { commandLine } from "../src/local/instance-group/service-command.ts";
import {
  admitConnection,
  parseMasterAddr,
  parseSwitchMaster,
  primaryReported,
} from "../src/local/redis/primary-endpoint.ts";
import { redisUrl } from "../src/local/redis/controller.ts";
import { serviceTraffic, StackValidationError, validateStack } from "../src/stack/index.ts";
import config from "../stayup.config.ts";

const a = { host: "127.0.0.1", port: 7001 };
const b = { host: "127.0.0.1", port: 7002 };

describe("the Redis primary endpoint's decisions", () => {
  it("follows the first primary Sentinel names and cuts nothing", () => {
    assert.deepEqual(primaryReported(undefined, a), { primary: a });
  });

  it("on a new primary, follows it and cuts the connections to the old one", () => {
    assert.deepEqual(primaryReported(a, b), { primary: b, cutConnectionsTo: a });
  });

  it("the same primary again (a poll after the message) changes nothing", () => {
    assert.deepEqual(primaryReported(a, { ...a }), { primary: a });
  });

  it("never forwards off loopback, whatever a Sentinel says; an unreadable report changes nothing", () => {
    assert.deepEqual(primaryReported(a, { host: "10.0.0.5", port: 6379 }), { primary: a });
    assert.deepEqual(primaryReported(undefined, { host: "192.168.1.2", port: 6379 }), { primary: undefined });
    assert.deepEqual(primaryReported(a, undefined), { primary: a });
  });

  it("reads +switch-master for its own master name only", () => {
    assert.deepEqual(parseSwitchMaster("stayup 127.0.0.1 7001 127.0.0.1 7002", "stayup"), b);
    assert.equal(parseSwitchMaster("other 127.0.0.1 7001 127.0.0.1 7002", "stayup"), undefined);
    assert.equal(parseSwitchMaster("stayup 127.0.0.1 7001", "stayup"), undefined);
    assert.equal(parseSwitchMaster("stayup 127.0.0.1 7001 127.0.0.1 99999", "stayup"), undefined);
  });

  it("reads get-master-addr-by-name's [ip, port], not null or junk", () => {
    assert.deepEqual(parseMasterAddr(["127.0.0.1", "7002"]), b);
    assert.equal(parseMasterAddr(null), undefined);
    assert.equal(parseMasterAddr(["127.0.0.1"]), undefined);
    assert.equal(parseMasterAddr(["127.0.0.1", "port"]), undefined);
  });

  it("refuses a connection beyond the cap, or while no primary is known", () => {
    assert.equal(admitConnection(0, 2, a), true);
    assert.equal(admitConnection(1, 2, a), true);
    assert.equal(admitConnection(2, 2, a), false);
    assert.equal(admitConnection(0, 2, undefined), false);
  });

  it("REDIS_URL carries the password, escaped, for any client's URL parser", () => {
    assert.equal(redisUrl("127.0.0.1", 6390, "p@ss/w:rd"), "redis://:p%40ss%2Fw%3Ard@127.0.0.1:6390");
    assert.equal(new URL(redisUrl("127.0.0.1", 6390, "p@ss/w:rd")).password, "p%40ss%2Fw%3Ard");
    assert.equal(redisUrl("127.0.0.1", 6390), "redis://127.0.0.1:6390");
  });
});

describe("a service command", () => {
  it("plain words run without a shell", () => {
    assert.deepEqual(commandLine("node server.js"), { file: "node", args: ["server.js"], shell: false });
    assert.deepEqual(commandLine("  python3   -m  app.main --port=0 "), {
      file: "python3",
      args: ["-m", "app.main", "--port=0"],
      shell: false,
    });
  });

  it("shell syntax runs under /bin/sh -c, whole", () => {
    for (const command of [
      "npm run build && npm start",
      "node 'my server.js'",
      "PORT=$PORT ./run",
      "app | tee log",
    ]) {
      assert.deepEqual(commandLine(command), { file: "/bin/sh", args: ["-c", command], shell: true });
    }
  });
});

describe("what drills read of an answer", () => {
  it("a number body, JSON's count, the instance that answered; anything else is still an answer", () => {
    assert.deepEqual(parseAnswer("42\n"), { number: 42 });
    assert.deepEqual(parseAnswer('{"count":7,"instanceId":"i-1"}'), {
      count: 7,
      instanceId: "i-1",
      number: 7,
    });
    assert.deepEqual(parseAnswer("<h1>hello</h1>"), {});
    assert.deepEqual(parseAnswer('{"hello":"world"}'), { instanceId: undefined, count: undefined });
  });

  it("measures the counter from its page, a service from its probe, and says why when it cannot", () => {
    assert.deepEqual(trafficPlan(undefined, undefined), {
      path: "/",
      consistency: "counter",
      notMeasured: {},
    });
    const counterElsewhere = trafficPlan({ service: "counter", trafficPath: "/" }, "/health");
    assert.equal(counterElsewhere.consistency, "none");
    assert.match(counterElsewhere.notMeasured.counterContinuous ?? "", /not the counter's page/);
    const plain = trafficPlan({ service: "command", trafficPath: "/api" }, undefined);
    assert.equal(plain.path, "/api");
    assert.equal(plain.consistency, "none");
    assert.match(plain.notMeasured.acknowledgedLost ?? "", /consistencyProbePath/);
    const probed = trafficPlan(
      { service: "command", trafficPath: "/", consistencyProbePath: "/count" },
      "/x",
    );
    assert.deepEqual(probed, { path: "/x", consistency: { probePath: "/count" }, notMeasured: {} });
  });
});

describe("drills on your own service", () => {
  it("those working through the counter are refused there, with why; the others run", () => {
    const byName = (name: string) => drills.find((d) => d.name === name) as (typeof drills)[number];
    for (const name of ["slow-instance", "failing-instance", "slow-redis", "cpu-spike"]) {
      assert.throws(() => assertRunsOnService(byName(name), "command"), /does not run on your own service/);
      assert.doesNotThrow(() => assertRunsOnService(byName(name), "counter"));
    }
    for (const name of ["kill-instance", "redis-failover", "az-outage", "lose-container-instance"]) {
      assert.doesNotThrow(() => assertRunsOnService(byName(name), "command"));
    }
  });
});

describe("webService's fields for your own service", () => {
  const withService = (webService: Record<string, unknown>) => ({
    ...config,
    webService: { port: 8000, ...webService },
  });
  const problems = (input: unknown) => {
    try {
      validateStack(input);
    } catch (error) {
      return (error as StackValidationError).problems;
    }
    assert.fail("expected the description to be refused");
  };

  it("absent: the counter, traffic to /", () => {
    const stack = validateStack(config);
    assert.deepEqual(serviceTraffic(stack), { service: "counter", trafficPath: "/" });
  });

  it("a command, its folder (default .), the traffic and probe paths", () => {
    const stack = validateStack(
      withService({
        start: { command: "node server.js" },
        trafficPath: "/api",
        consistencyProbePath: "/count",
      }),
    );
    assert.deepEqual(stack.webService.start, { command: "node server.js", workingDirectory: "." });
    assert.deepEqual(serviceTraffic(stack), {
      service: "command",
      trafficPath: "/api",
      consistencyProbePath: "/count",
    });
  });

  it("refuses an empty command, a multi-line one, a path without /, an unknown field, with the field's path", () => {
    const found = problems(
      withService({
        start: { command: " ", workingDir: "." },
        trafficPath: "api",
        consistencyProbePath: "/a b",
      }),
    ).map((p) => p.path);
    assert.deepEqual(found.sort(), [
      "webService.consistencyProbePath",
      "webService.start",
      "webService.start.command",
      "webService.trafficPath",
    ]);
    const multiLine = problems(withService({ start: { command: "node a.js\nrm -rf /" } }));
    // The message names the rule, then echoes what was given (issue 25 item 11).
    assert.deepEqual(
      multiLine.map((p) => [p.path, p.message]),
      [
        [
          "webService.start.command",
          'must be one line (chain commands with && if you must), got "node a.js\\nrm -rf /"',
        ],
      ],
    );
  });
});
