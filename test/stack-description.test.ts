import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { loadStack, resolveStack, StackValidationError, validateStack } from "../src/stack/index.ts";
import { configPath, repoRoot, runCli, tempDir } from "./helpers.ts";

const valid = async () => structuredClone((await import("../stayup.config.ts")).default);

describe("stack description", () => {
  it("the repository's stayup.config.ts is valid and reproduces tutorial 07 over three AZs", async () => {
    const dev = await loadStack(configPath, "dev");
    assert.equal(dev.regions.primary.availabilityZones.length, 3);
    assert.ok(dev.web.capacity.desired >= 2, "at least two instances behind the load balancer");
    assert.equal(dev.targetGroup.healthCheck.path, "/health");
    const prod = await loadStack(configPath, "prod");
    assert.equal(prod.network.natGateways, "one-per-az");
    assert.equal(dev.network.natGateways, "one");
    assert.equal(prod.redis.multiAz, true);
    // Shared settings and environment settings both reach the resolved stack.
    assert.equal(prod.redis.localPort, dev.redis.localPort);
  });

  it("reports every bad field with its path and what is allowed", async () => {
    const input = await valid();
    input.name = "Bad Name";
    input.regions.primary.availabilityZones = ["eu-west-3a", "us-east-1b", "eu-west-3a"];
    input.targetGroup.healthCheck.local.timeoutMs = 900;
    input.environments.dev.web.capacity = { min: 3, desired: 2, max: 4 };
    (input as Record<string, unknown>).loadBalncer = {};
    let error: StackValidationError | undefined;
    try {
      validateStack(input, "stayup.config.ts");
    } catch (e) {
      error = e as StackValidationError;
    }
    assert.ok(error instanceof StackValidationError);
    const byPath = new Map(error.problems.map((p) => [p.path, p.message]));
    assert.match(byPath.get("name") ?? "", /lower-case/);
    assert.match(byPath.get("regions.primary.availabilityZones[1]") ?? "", /not in region eu-west-3/);
    assert.match(byPath.get("regions.primary.availabilityZones[2]") ?? "", /listed twice/);
    assert.match(byPath.get("targetGroup.healthCheck.local.timeoutMs") ?? "", /shorter than intervalMs/);
    assert.match(byPath.get("environments.dev.web.capacity.desired") ?? "", /≥ min \(3\)/);
    assert.match(byPath.get("") ?? "", /unknown field.*loadBalncer/);
    assert.match(error.message, /5 problems|6 problems/);
  });

  it("checks the secondary region against the rest of the description", async () => {
    const input = await valid();
    const secondary = input.regions.secondary;
    assert.ok(secondary, "the default description has a secondary region");
    secondary.name = "eu-west-3";
    secondary.localHost = "127.0.0.1";
    secondary.standby.warmCapacity = 50;
    delete (input as { dns?: unknown }).dns;
    let error: StackValidationError | undefined;
    try {
      validateStack(input);
    } catch (e) {
      error = e as StackValidationError;
    }
    const byPath = new Map(error?.problems.map((p) => [p.path, p.message]));
    assert.match(byPath.get("regions.secondary.name") ?? "", /must differ from the primary/);
    assert.match(byPath.get("regions.secondary.availabilityZones[0]") ?? "", /not in region eu-west-3/);
    assert.match(byPath.get("regions.secondary.localHost") ?? "", /DNS answers an address, not a port/);
    assert.match(
      byPath.get("regions.secondary.standby.warmCapacity") ?? "",
      /≤ environments\.(dev|prod)\.web\.capacity\.max/,
    );
    assert.match(byPath.get("dns") ?? "", /required with a secondary region/);
  });

  it("refuses a region health check that would call the region down within its own recovery budget, and a checked pilot light", async () => {
    const input = await valid();
    assert.ok(input.dns);
    input.dns.healthCheck.failureThreshold = 2;
    input.dns.healthCheck.checkedRecords = "both";
    let error: StackValidationError | undefined;
    try {
      validateStack(input);
    } catch (e) {
      error = e as StackValidationError;
    }
    const byPath = new Map(error?.problems.map((p) => [p.path, p.message]));
    // 2 × 10 s on AWS, within the 60 s budgeted for an ElastiCache failover; 2 × 1000 ms locally.
    assert.match(
      byPath.get("dns.healthCheck.failureThreshold") ?? "",
      /called down 10 s after .* within the 60 s .*ElastiCache failover 60 s.*: set it to at least 8/,
    );
    assert.match(
      byPath.get("dns.healthCheck.local.intervalMs") ?? "",
      /called down 1000 ms after .*within the 6500 ms .*set it to at least 6501/,
    );
    assert.match(
      byPath.get("dns.healthCheck.checkedRecords") ?? "",
      /pilot-light .* Route 53 answers the failed primary/,
    );
  });

  it("checks the hosted zone, dns.name and HTTPS against each other", async () => {
    const problems = async (change: (d: Awaited<ReturnType<typeof valid>>) => void) => {
      const input = await valid();
      change(input);
      try {
        validateStack(input);
        return new Map<string, string>();
      } catch (e) {
        return new Map((e as StackValidationError).problems.map((p) => [p.path, p.message]));
      }
    };
    const noZone = await problems((d) => {
      d.aws.https = true;
    });
    assert.match(noZone.get("aws.hostedZone") ?? "", /required with aws\.https/);
    const outside = await problems((d) => {
      d.aws.hostedZone = { id: "Z0123456789ABC", name: "example.com" };
    });
    assert.match(outside.get("dns.name") ?? "", /inside aws\.hostedZone\.name.*app\.example\.com/);
    const apex = await problems((d) => {
      d.aws.hostedZone = { id: "Z0123456789ABC", name: "example.com" };
      if (d.dns) d.dns.name = "example.com";
    });
    assert.match(apex.get("dns.name") ?? "", /below its apex/);
    const single = await problems((d) => {
      d.aws.hostedZone = { id: "Z0123456789ABC", name: "example.com" };
      if (d.dns) d.dns.name = "app.example.com";
      d.aws.https = true;
      d.topology = "single-instance";
    });
    assert.match(single.get("aws.https") ?? "", /load-balanced topology/);
    const badId = await problems((d) => {
      d.aws.hostedZone = { id: "example.com", name: "example.com" };
    });
    assert.match(badId.get("aws.hostedZone.id") ?? "", /hosted zone id/);
    const good = await problems((d) => {
      d.aws.hostedZone = { id: "Z0123456789ABC", name: "example.com" };
      if (d.dns) d.dns.name = "app.example.com";
      d.aws.https = true;
    });
    assert.equal(good.size, 0, [...good].join("; "));
  });

  it("rejects ALB timings the ALB would reject", async () => {
    const input = await valid();
    input.targetGroup.healthCheck.aws.intervalSeconds = 1;
    assert.throws(
      () => validateStack(input),
      /targetGroup\.healthCheck\.aws\.intervalSeconds: the ALB allows 5 to 300 s/,
    );
  });

  it("the load balancer's client limits: documented defaults when left out, checked when set", async () => {
    const stack = validateStack(await valid());
    assert.deepEqual(stack.loadBalancer.local.limits, {
      requestTimeoutMs: 60_000,
      maxClientConnections: 4096,
      maxRequestHeadBytes: 16 * 1024,
      maxRequestBodyBytes: 10 * 1024 * 1024,
      maxBufferedRequestBytesTotal: 64 * 1024 * 1024,
      maxQueuedResponseBytes: 1024 * 1024,
      maxConnectionsPerTarget: 128,
      targetQueueTimeoutMs: 60_000,
    });
    const input = await valid();
    Object.assign(input.loadBalancer.local, { limits: { requestTimeoutMs: 5000 } });
    const some = validateStack(input).loadBalancer.local.limits;
    assert.equal(some.requestTimeoutMs, 5000);
    assert.equal(some.maxClientConnections, 4096, "the others keep their defaults");
    Object.assign(input.loadBalancer.local, {
      limits: { maxRequestBodyBytes: 32 * 1024 * 1024, maxBufferedRequestBytesTotal: 16 * 1024 * 1024 },
    });
    assert.throws(
      () => validateStack(input),
      /loadBalancer\.local\.limits\.maxBufferedRequestBytesTotal: must be ≥ maxRequestBodyBytes/,
    );
  });

  it("resolves an environment and refuses an unknown one", async () => {
    const stack = validateStack(await valid());
    assert.equal(resolveStack(stack, "prod").deletionProtection, true);
    assert.throws(() => resolveStack(stack, "staging" as "dev"), /unknown environment "staging"/);
  });

  it("`stayup up` with a bad description prints the problems and starts nothing", async () => {
    const dir = tempDir();
    const bad = path.join(dir, "stayup.config.ts");
    const source = (await import("node:fs")).readFileSync(configPath, "utf8");
    writeFileSync(
      bad,
      source
        .replace(
          'from "./src/stack/index.ts"',
          `from ${JSON.stringify(path.join(repoRoot, "src/stack/index.ts"))}`,
        )
        .replace("local: { intervalMs: 500, timeoutMs: 250 }", "local: { intervalMs: 5, timeoutMs: 2 }")
        .replace("min: 2, desired: 2, max: 4", "min: 2, desired: 9, max: 4"),
    );
    const stateDir = path.join(dir, ".stayup");
    const result = await runCli(
      ["up", "--config", bad, "--state-dir", stateDir, "--port", "0", "--redis-port", "0"],
      {
        cwd: dir,
      },
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /targetGroup\.healthCheck\.local\.intervalMs: must be 50 ms or more/);
    assert.match(result.stderr, /environments\.dev\.web\.capacity\.desired: must be ≤ max \(4\), got 9/);
    assert.match(result.stderr, /nothing was started/);
    assert.equal(
      existsSync(stateDir),
      false,
      "no state directory, so no Redis and no instances were started",
    );
  });

  it("a missing description file is a clear error", async () => {
    const dir = tempDir();
    const result = await runCli(["up"], { cwd: dir });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no stack description at .*stayup\.config\.ts/);
    assert.match(result.stderr, /--config/);
  });
});

/** Issue 25, item 11: the mistakes a new user makes in stayup.config.ts, answered in its words. */
describe("description errors a new user meets", () => {
  const problems = (input: unknown): Map<string, string> => {
    try {
      validateStack(input, "stayup.config.ts");
    } catch (e) {
      assert.ok(e instanceof StackValidationError);
      return new Map(e.problems.map((p) => [p.path, p.message]));
    }
    assert.fail("the description was accepted");
  };

  it("a field of the wrong type is present, not missing: the type expected and the value given", async () => {
    const input = await valid();
    (input.webService as Record<string, unknown>).port = "8000";
    assert.equal(problems(input).get("webService.port"), 'must be a number, got string "8000"');
  });

  it("a bad topology is echoed with the nearest allowed one", async () => {
    const input = await valid();
    (input as Record<string, unknown>).topology = "load-balancd";
    assert.match(problems(input).get("topology") ?? "", /got "load-balancd": did you mean "load-balanced"\?/);
  });

  it("a misspelt field, at any depth, gets a did you mean", async () => {
    const input = await valid();
    const targetGroup = input.targetGroup as Record<string, unknown>;
    targetGroup.deregistrationDelaySecond = targetGroup.deregistrationDelaySeconds;
    delete targetGroup.deregistrationDelaySeconds;
    assert.equal(
      problems(input).get("targetGroup"),
      'unknown field "deregistrationDelaySecond": did you mean "deregistrationDelaySeconds"?',
    );
    const far = await valid();
    (far.targetGroup.healthCheck as Record<string, unknown>).zzzz = 1;
    assert.match(problems(far).get("targetGroup.healthCheck") ?? "", /unknown field "zzzz": .*allowed: path/);
  });

  it("a misspelt required field is reported once, as the misspelling", async () => {
    const input = (await valid()) as Record<string, unknown>;
    input.nmae = input.name;
    delete input.name;
    const found = problems(input);
    assert.equal(found.get(""), 'unknown field "nmae": did you mean "name"?');
    assert.equal(found.has("name"), false, [...found].join("\n"));
    delete input.nmae;
    assert.equal(
      problems(input).get("name"),
      "is required (string)",
      "missing, not misspelt: still reported",
    );
  });

  const withSource = (edit: (source: string) => string) => {
    const file = path.join(tempDir(), "stayup.config.ts");
    const source = readFileSync(configPath, "utf8").replace(
      'from "./src/stack/index.ts"',
      `from ${JSON.stringify(path.join(repoRoot, "src/stack/index.ts"))}`,
    );
    writeFileSync(file, edit(source));
    return {
      file,
      lineOf: (text: string) =>
        edit(source)
          .split("\n")
          .findIndex((l) => l.includes(text)) + 1,
    };
  };

  it("a bracket left open is reported at its own line, not at the file's last", async () => {
    const { file, lineOf } = withSource((s) =>
      s.replace("webService: { port: 8000 },", "webService: { port: 8000,"),
    );
    const line = lineOf("webService: { port: 8000,");
    await assert.rejects(loadStack(file), (e: Error) => {
      assert.match(
        e.message,
        new RegExp(`stayup\\.config\\.ts:${line}:\\d+: syntax error: this "\\{" is never closed`),
      );
      return true;
    });
  });

  it("another syntax error is reported at its line, as the parser found it", async () => {
    const { file, lineOf } = withSource((s) => s.replace("ttlSeconds: 1,", "ttlSeconds: 1,,"));
    await assert.rejects(
      loadStack(file),
      new RegExp(`stayup\\.config\\.ts:${lineOf("ttlSeconds: 1,,")}:\\d+: syntax error`),
    );
  });

  it("synth and diagram, which start nothing, do not say that nothing was started", async () => {
    const { file } = withSource((s) =>
      s.replace("webService: { port: 8000 }", 'webService: { port: "8000" }'),
    );
    for (const command of ["synth", "diagram"]) {
      const res = await runCli([command, "--config", file], { cwd: path.dirname(file) });
      assert.equal(res.code, 1, res.stdout);
      assert.match(res.stderr, /webService\.port: must be a number, got string "8000"/);
      assert.doesNotMatch(res.stderr, /nothing was started/);
    }
  });
});
