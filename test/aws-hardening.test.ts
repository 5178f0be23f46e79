/**
 * Issue #12's AWS items and #13's target-group algorithm, as CDK assertions on the synthesized
 * templates: least-privilege Session Manager, no public /metrics, the log bucket's versions and
 * teardown, the failover Lambdas' on-failure destination, HSTS, weighted_random with anomaly mitigation.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Match } from "aws-cdk-lib/assertions";
import { sessionManagerActions } from "../src/aws/session-manager.ts";
import { HSTS_HEADER_VALUE } from "../src/aws/web/web-tier.ts";
import { StackValidationError } from "../src/stack/index.ts";
import { description, inHostedZone, resourcesOf, type Synthesized, synth } from "./aws-helpers.ts";

type Json = Record<string, unknown>;
type Statement = { Sid?: string; Action: string | string[]; Resource: unknown };

const statementsOf = (json: Json): Statement[] =>
  resourcesOf(json, "AWS::IAM::Policy").flatMap(
    ([, p]) => ((p.Properties as Json).PolicyDocument as { Statement: Statement[] }).Statement,
  );
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe("AWS hardening (issues #12 and #13)", () => {
  let dev: Synthesized;
  let prod: Synthesized;
  let https: Synthesized;
  before(async () => {
    dev = synth(await description("dev"));
    prod = synth(await description("prod"));
    https = synth(
      await description("prod", (d) => {
        inHostedZone(d);
        d.aws.https = true;
        d.aws.bastion = { allowedCidr: "203.0.113.0/24", instanceType: "t3.nano" };
      }),
    );
  });

  it("instances get Session Manager's five agent actions, no managed policy, no parameter reads beyond their own settings path", () => {
    for (const [name, json] of [
      ["dev web", dev.json.web],
      ["dev secondary web", dev.json["secondary-web"]],
      ["prod web", prod.json.web],
      ["bastion", https.json.access],
    ] as const) {
      const roles = resourcesOf(json as Json, "AWS::IAM::Role").filter(([, r]) =>
        JSON.stringify((r.Properties as Json).AssumeRolePolicyDocument).includes("ec2.amazonaws.com"),
      );
      assert.equal(roles.length, 1, `${name}: one instance role`);
      assert.equal(
        (roles[0]?.[1].Properties as Json).ManagedPolicyArns,
        undefined,
        `${name}: no managed policy`,
      );
      const statements = statementsOf(json as Json);
      const ssm = statements.find((s) => s.Sid === "SessionManager");
      assert.ok(ssm, `${name}: a Session Manager statement`);
      assert.deepEqual(actionsOf(ssm).sort(), [...sessionManagerActions].sort());
      const all = statements.flatMap(actionsOf);
      // Parameter reads only where they name this group's own settings path (seed 003's settings
      // in Parameter Store), never the region's parameters.
      for (const s of statements) {
        if (!actionsOf(s).some((a) => /^ssm:(GetParameter|GetParameters|GetParametersByPath|\*)$/.test(a)))
          continue;
        assert.equal(
          s.Sid,
          "ReadThisGroupsInstanceSettings",
          `${name}: parameter reads only in the settings statement`,
        );
        assert.match(
          JSON.stringify(s.Resource),
          /:parameter\/stayup\//,
          `${name}: only the group's own path`,
        );
        assert.doesNotMatch(
          JSON.stringify(s.Resource),
          /parameter\/\*/,
          `${name}: no wildcard over parameters`,
        );
      }
      assert.ok(!all.some((a) => a.endsWith(":*")), `${name}: no service-wide action`);
    }
    assert.doesNotMatch(JSON.stringify(https.json), /AmazonSSMManagedInstanceCore/);
  });

  it("the public listener answers /metrics itself (404) before anything is forwarded, HTTP and HTTPS alike", () => {
    for (const [name, json, port] of [
      ["HTTP", dev.json.web, 80],
      ["HTTPS", https.json.web, 443],
    ] as const) {
      const listener = resourcesOf(json as Json, "AWS::ElasticLoadBalancingV2::Listener").find(
        ([, l]) => (l.Properties as Json).Port === port,
      );
      assert.ok(listener, `${name}: listener on ${port}`);
      const rules = resourcesOf(json as Json, "AWS::ElasticLoadBalancingV2::ListenerRule").map(
        ([, r]) => r.Properties as Json,
      );
      const metrics = rules.filter((r) => JSON.stringify(r.Conditions).includes("/metrics"));
      assert.equal(metrics.length, 1, `${name}: one rule for /metrics`);
      assert.deepEqual(metrics[0]?.ListenerArn, { Ref: listener[0] });
      assert.deepEqual(metrics[0]?.Conditions, [
        { Field: "path-pattern", PathPatternConfig: { Values: ["/metrics", "/metrics/*"] } },
      ]);
      assert.deepEqual(
        (metrics[0]?.Actions as Json[]).map((a) => [a.Type, (a.FixedResponseConfig as Json)?.StatusCode]),
        [["fixed-response", "404"]],
      );
      // The first rule evaluated: no other rule can forward /metrics before it.
      const priorities = rules.map((r) => r.Priority as number);
      assert.equal(metrics[0]?.Priority, Math.min(...priorities));
    }
  });

  it("the ALB log bucket expires old versions and delete markers", () => {
    for (const s of [dev, prod]) {
      s.templates.web?.hasResourceProperties("AWS::S3::Bucket", {
        VersioningConfiguration: { Status: "Enabled" },
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            Match.objectLike({ ExpirationInDays: 30, NoncurrentVersionExpiration: { NoncurrentDays: 1 } }),
            Match.objectLike({ ExpiredObjectDeleteMarker: true }),
          ]),
        },
      });
    }
  });

  it("dev empties the log bucket when the stack is destroyed; prod keeps it", () => {
    const [bucketId] = resourcesOf(dev.json.web as Json, "AWS::S3::Bucket")[0] ?? [];
    assert.ok(bucketId);
    dev.templates.web?.hasResource("AWS::S3::Bucket", { DeletionPolicy: "Delete" });
    dev.templates.web?.hasResourceProperties("Custom::S3AutoDeleteObjects", {
      BucketName: { Ref: bucketId },
    });
    prod.templates.web?.resourceCountIs("Custom::S3AutoDeleteObjects", 0);
    prod.templates.web?.hasResource("AWS::S3::Bucket", { DeletionPolicy: "Retain" });
  });

  it("HSTS on the HTTPS listener", () => {
    https.templates.web?.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Port: 443,
      ListenerAttributes: [
        { Key: "routing.http.response.strict_transport_security.header_value", Value: HSTS_HEADER_VALUE },
      ],
    });
    assert.match(HSTS_HEADER_VALUE, /^max-age=31536000; includeSubDomains$/);
  });

  it("the failover and failback functions retry twice, then send the failed event to the failover topic", () => {
    const json = https.json["dns-failover"] as Json;
    const [topicId] = resourcesOf(json, "AWS::SNS::Topic")[0] ?? [];
    const functions = resourcesOf(json, "AWS::Lambda::Function").map(([id]) => id);
    assert.equal(functions.length, 2);
    const configs = resourcesOf(json, "AWS::Lambda::EventInvokeConfig").map(([, c]) => c.Properties as Json);
    assert.deepEqual(
      configs.map((c) => (c.FunctionName as { Ref: string }).Ref).sort(),
      [...functions].sort(),
      "one per function",
    );
    for (const c of configs) {
      assert.deepEqual(c.DestinationConfig, { OnFailure: { Destination: { Ref: topicId } } });
      assert.equal(c.MaximumRetryAttempts, 2);
    }
  });

  it("the target group uses weighted_random with anomaly mitigation (the description's default), in both regions", () => {
    for (const kind of ["web", "secondary-web"]) {
      prod.templates[kind]?.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
        TargetGroupAttributes: Match.arrayWith([
          { Key: "load_balancing.algorithm.type", Value: "weighted_random" },
          { Key: "load_balancing.algorithm.anomaly_mitigation", Value: "on" },
        ]),
      });
    }
  });

  it("the description chooses: anomaly mitigation off, or another algorithm", async () => {
    const off = synth(
      await description(
        "dev",
        (d) => (d.targetGroup.aws = { algorithm: "weighted_random", anomalyMitigation: false }),
      ),
    );
    off.templates.web?.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      TargetGroupAttributes: Match.arrayWith([
        { Key: "load_balancing.algorithm.type", Value: "weighted_random" },
        { Key: "load_balancing.algorithm.anomaly_mitigation", Value: "off" },
      ]),
    });
    const lor = synth(
      await description(
        "dev",
        (d) => (d.targetGroup.aws = { algorithm: "least_outstanding_requests", anomalyMitigation: false }),
      ),
    );
    lor.templates.web?.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      TargetGroupAttributes: Match.arrayWith([
        { Key: "load_balancing.algorithm.type", Value: "least_outstanding_requests" },
      ]),
    });
    assert.doesNotMatch(JSON.stringify(lor.json.web), /anomaly_mitigation/);
  });

  it("anomaly mitigation with another algorithm is rejected with the field's path and the fix", async () => {
    await assert.rejects(
      description("dev", (d) => (d.targetGroup.aws = { algorithm: "round_robin", anomalyMitigation: true })),
      (error: unknown) =>
        error instanceof StackValidationError &&
        error.problems.some(
          (p) => p.path === "targetGroup.aws.anomalyMitigation" && /weighted_random/.test(p.message),
        ),
    );
  });
});
