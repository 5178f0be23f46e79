import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Match, type Template } from "aws-cdk-lib/assertions";
import { StackValidationError, type StackDescription } from "../src/stack/index.ts";
import { description, resourcesOf, type Synthesized, synth } from "./aws-helpers.ts";

type Json = Record<string, unknown>;

const nightly = (days: "every-day" | "weekdays" = "every-day") => ({
  stopAt: "20:00",
  startAt: "07:30",
  timeZone: "Europe/Paris",
  days,
});

const singleInstance = (d: StackDescription) => {
  d.topology = "single-instance";
};

function template(out: Synthesized, kind: string): Template {
  const t = out.templates[kind];
  assert.ok(t, `no ${kind} stack in ${Object.keys(out.templates).join(", ")}`);
  return t;
}

/** The user data of the stack's launch template, joined into one string (tokens as JSON). */
function userDataOf(out: Synthesized, kind: string): string {
  const json = out.json[kind];
  assert.ok(json);
  const [entry] = resourcesOf(json, "AWS::EC2::LaunchTemplate");
  assert.ok(entry, "no launch template");
  return JSON.stringify((entry[1].Properties as Json).LaunchTemplateData);
}

describe("AWS: nightly stop (seed 003)", () => {
  let dev: Synthesized;
  before(async () => {
    dev = synth(await description("dev", (d) => void (d.environments.dev.nightlyStop = nightly())));
  });

  it("the web group goes to 0 at stopAt and back to its capacity at startAt, in the time zone", async () => {
    const d = await description("dev");
    const web = template(dev, "web");
    web.resourceCountIs("AWS::AutoScaling::ScheduledAction", 2);
    web.hasResourceProperties("AWS::AutoScaling::ScheduledAction", {
      Recurrence: "0 20 * * *",
      TimeZone: "Europe/Paris",
      MinSize: 0,
      DesiredCapacity: 0,
      MaxSize: 0,
    });
    web.hasResourceProperties("AWS::AutoScaling::ScheduledAction", {
      Recurrence: "30 7 * * *",
      TimeZone: "Europe/Paris",
      MinSize: d.web.capacity.min,
      DesiredCapacity: d.web.capacity.desired,
      MaxSize: d.web.capacity.max,
    });
  });

  it("the secondary region's group restarts at its standby minimum, its desired capacity left to failover", async () => {
    const d = await description("dev");
    const secondary = template(dev, "secondary-web");
    secondary.hasResourceProperties("AWS::AutoScaling::ScheduledAction", {
      Recurrence: "30 7 * * *",
      MinSize: 0,
      DesiredCapacity: Match.absent(),
      MaxSize: d.web.capacity.max,
    });
  });

  it("an environment without the setting has no scheduled action", async () => {
    const prod = synth(await description("prod"));
    template(prod, "web").resourceCountIs("AWS::AutoScaling::ScheduledAction", 0);
  });

  it("the single instance stops on weekday evenings and starts on weekday mornings as a group of 1", async () => {
    const out = synth(
      await description("prod", (d) => {
        singleInstance(d);
        d.environments.prod.nightlyStop = nightly("weekdays");
      }),
    );
    const single = template(out, "single-instance");
    single.hasResourceProperties("AWS::AutoScaling::ScheduledAction", {
      Recurrence: "0 20 * * MON-FRI",
      MinSize: 0,
      DesiredCapacity: 0,
      MaxSize: 0,
    });
    single.hasResourceProperties("AWS::AutoScaling::ScheduledAction", {
      Recurrence: "30 7 * * MON-FRI",
      MinSize: 1,
      DesiredCapacity: 1,
      MaxSize: 1,
    });
  });

  it("a bad time zone or time is rejected with the field's path before anything starts", async () => {
    await assert.rejects(
      description("dev", (d) => {
        d.environments.dev.nightlyStop = { ...nightly(), timeZone: "Paris", stopAt: "25:00" };
      }),
      (error: unknown) => {
        assert.ok(error instanceof StackValidationError);
        const paths = error.problems.map((p) => p.path).sort();
        assert.deepEqual(paths, [
          "environments.dev.nightlyStop.stopAt",
          "environments.dev.nightlyStop.timeZone",
        ]);
        return true;
      },
    );
  });

  it("stop and start at the same minute is rejected", async () => {
    await assert.rejects(
      description("dev", (d) => {
        d.environments.dev.nightlyStop = { ...nightly(), startAt: "20:00" };
      }),
      /environments\.dev\.nightlyStop\.startAt: must differ from stopAt/,
    );
  });
});

describe("AWS: instance settings in Parameter Store (seed 003)", () => {
  let dev: Synthesized;
  before(async () => {
    dev = synth(await description("dev"));
  });

  it("the web stack renders one parameter per setting under the group's path", () => {
    const web = template(dev, "web");
    for (const name of ["SERVICE_PORT", "REDIS_HOST", "REDIS_PORT", "REDIS_AUTH_SECRET_ARN"]) {
      web.hasResourceProperties("AWS::SSM::Parameter", {
        Name: `/stayup/stayup-dev-web/${name}`,
        Type: "String",
      });
    }
    web.hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/stayup/stayup-dev-web/SERVICE_PORT",
      Value: "8000",
    });
  });

  it("the instance role reads that path and nothing else in Parameter Store, in a statement of its own", () => {
    const json = dev.json.web;
    assert.ok(json);
    const statements = resourcesOf(json, "AWS::IAM::Policy").flatMap(
      ([, p]) => ((p.Properties as Json).PolicyDocument as { Statement: Json[] }).Statement,
    );
    // Session Manager's statement (ssm:UpdateInstanceInformation) reads nothing; only reads count here.
    const ssmStatements = statements.filter((s) => /ssm:(GetParameter|\*)/.test(JSON.stringify(s.Action)));
    assert.equal(ssmStatements.length, 1);
    const [statement] = ssmStatements;
    assert.ok(statement);
    assert.equal(statement.Sid, "ReadThisGroupsInstanceSettings");
    // GetParametersByPath is authorized against the path: the path is the whole grant.
    assert.equal(statement.Action, "ssm:GetParametersByPath");
    const resource = JSON.stringify(statement.Resource);
    assert.match(resource, /:parameter\/stayup\/stayup-dev-web"/);
    assert.doesNotMatch(resource, /\*/);
  });

  it("user data reads the settings at boot instead of carrying them", () => {
    const userData = userDataOf(dev, "web");
    assert.match(
      userData,
      /aws ssm get-parameters-by-path --region \\"\$REGION\\" --path \/stayup\/stayup-dev-web /,
    );
    assert.match(userData, /PORT=\$SERVICE_PORT/);
    assert.doesNotMatch(
      userData,
      /PrimaryEndPoint\.Address/,
      "the Redis endpoint is a parameter, not user data",
    );
    assert.doesNotMatch(userData, /PORT=8000/);
  });

  it("the single instance's settings live under its own path", async () => {
    const out = synth(await description("dev", singleInstance));
    template(out, "single-instance").hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/stayup/stayup-dev-single/REDIS_URL",
      Value: "redis://127.0.0.1:6379",
    });
    assert.match(userDataOf(out, "single-instance"), /--path \/stayup\/stayup-dev-single /);
  });

  it("every instance is launched with its version, and a settings change is a new version", async () => {
    const version = (out: Synthesized) => {
      const match = /STAYUP_VERSION=(v-[0-9a-f]{12})/.exec(userDataOf(out, "web"));
      assert.ok(match, "no STAYUP_VERSION in user data");
      return match[1];
    };
    // Synthesized again here, not a copy of the run's first synthesis (test/aws-helpers.ts).
    const again = synth(await description("dev"), false, undefined, { fresh: true });
    assert.equal(version(again), version(dev), "the same description is the same version");
    const otherPort = synth(await description("dev", (d) => void (d.webService.port = 8001)));
    assert.notEqual(version(otherPort), version(dev));
  });
});
