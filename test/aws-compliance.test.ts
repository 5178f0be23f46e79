import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { CfnGuardValidator } from "@cdklabs/cdk-validator-cfnguard";
import { Stack, Validations, aws_s3 as s3 } from "aws-cdk-lib";
import { acknowledgements } from "../src/aws/compliance/acknowledgements.ts";
import { createStayupApp, synthesizeChecked, unacknowledgedFindings } from "../src/aws/compliance/checks.ts";
import { ControlTowerGuard, controlTowerRules, controlTowerRulesFor } from "../src/aws/compliance/guard.ts";
import { cfnLint, synthesize } from "../src/aws/synth.ts";
import { lintAll } from "../src/cli/commands/check/index.ts";
import type { StackDescription } from "../src/stack/index.ts";
import { description, inHostedZone, inOtherRegions, noCredentials } from "./aws-helpers.ts";
import { configPath, runCli, tempDir } from "./helpers.ts";

/**
 * The descriptions checked here, each with cdk-nag, cfn-guard and cfn-lint. The repository's own
 * dev and prod are not among them: the `stayup check` test below checks those two (the same
 * syntheses, through the CLI) and reads their validation reports as these tests do. Dev as a
 * single instance is not either: aws-your-service.test.ts checks it the same way (with a user's
 * folder in place of the counter's bundle, which prod single instance here carries).
 */
const variants: [string, "dev" | "prod", ((d: StackDescription) => void) | undefined][] = [
  [
    "dev with an SSH bastion",
    "dev",
    (d) => {
      d.aws.bastion = { allowedCidr: "203.0.113.0/24", instanceType: "t3.nano" };
    },
  ],
  [
    "prod with HTTPS and Route 53 failover",
    "prod",
    (d) => {
      inHostedZone(d);
      d.aws.https = true;
    },
  ],
  [
    "dev, Route 53 failover, regions us-west-2 and eu-west-1, notifications",
    "dev",
    (d) => {
      inHostedZone(d);
      inOtherRegions(d);
      d.notifications.emails = ["ops@example.com"];
      d.notifications.webhooks = ["https://hooks.example.com/stayup"];
    },
  ],
  [
    "prod single instance",
    "prod",
    (d) => {
      d.topology = "single-instance";
    },
  ],
];

/**
 * Every plugin report of the synthesis in `outdir` lists no violation (acknowledged ones are listed
 * apart, as suppressedViolations). Not the report's `conclusion`: CDK leaves cfn-guard's at "success"
 * when one of its findings is acknowledged and another is not. Returns the plugins that reported.
 */
function assertNoUnacknowledgedFindings(outdir: string): string[] {
  const report = JSON.parse(readFileSync(path.join(outdir, "validation-report.json"), "utf8")) as {
    pluginReports: { pluginName: string; conclusion: string; violations: { ruleName: string }[] }[];
  };
  for (const p of report.pluginReports) {
    assert.deepEqual(
      p.violations.map((v) => v.ruleName),
      [],
      `${p.pluginName}: unacknowledged findings: ${JSON.stringify(p.violations).slice(0, 500)}`,
    );
    assert.equal(p.conclusion, "success", p.pluginName);
  }
  return report.pluginReports.map((r) => r.pluginName);
}

/** Each variant's templates, for the one cfn-lint run over all of them. */
const linted = new Map<string, string[]>();

// A bound against a hang, not a speed requirement: seven checked syntheses take minutes on a busy machine.
describe("offline proof: cdk-nag, cfn-guard and cfn-lint", { timeout: 1_200_000 }, () => {
  for (const [name, env, change] of variants) {
    it(`${name}: 0 unacknowledged cdk-nag/cfn-guard findings`, async () => {
      const stack = await description(env, change);
      const outdir = path.join(tempDir("stayup-check-"), env);
      const result = synthesize(stack, outdir, { compliance: true });
      if (name.includes("Route 53")) {
        assert.ok(
          result.stacks.some((s) => s.name.endsWith("-dns-failover")),
          "the dns-failover stack is among those checked",
        );
      }
      const plugins = assertNoUnacknowledgedFindings(outdir);
      assert.ok(plugins.includes("AwsSolutions"), `cdk-nag ran: ${plugins.join(", ")}`);
      assert.ok(
        plugins.some((p) => /cfnguard/i.test(p)),
        `cfn-guard ran: ${plugins.join(", ")}`,
      );
      linted.set(
        name,
        result.stacks.map((s) => s.templateFile),
      );
    });
  }

  // One cfn-lint process over every variant's templates: most of a run is cfn-lint's own start.
  it("every variant above: cfn-lint 0 errors 0 warnings", async () => {
    assert.deepEqual(
      [...linted.keys()],
      variants.map(([name]) => name),
      "every variant synthesized",
    );
    const lint = await cfnLint([...linted.values()].flat());
    // The output names each template's path; the variant each folder holds:
    const folders = [...linted].map(([name, files]) => `${path.dirname(files[0] ?? "")}: ${name}`);
    assert.equal(lint.ok, true, `${lint.output}\n${folders.join("\n")}`);
  });

  it("every acknowledgment carries a reason of substance", () => {
    for (const a of acknowledgements) {
      assert.ok(a.reason.length >= 40, `${a.id}: reason too thin: "${a.reason}"`);
      assert.ok(a.stacks.length > 0, `${a.id}: applies to no stack`);
    }
  });

  it("the checks can fail: without an acknowledgment, synthesis stops with the finding", async () => {
    const index = acknowledgements.findIndex((a) => a.id === "AwsSolutions::AwsSolutions-EC23");
    const [removed] = acknowledgements.splice(index, 1);
    try {
      // The single instance's two stacks (its network stack holds the open security group, as the
      // load balancer's does): the smallest synthesis the finding is in.
      const stack = await description("dev", (d) => {
        d.topology = "single-instance";
      });
      const outdir = path.join(tempDir("stayup-check-"), "dev");
      assert.throws(
        () => synthesize(stack, outdir, { compliance: true }),
        /synthesis of dev failed: Validation failed/,
      );
      // For the acknowledgment removed, not for another reason: the report holds its finding.
      assert.match(JSON.stringify(unacknowledgedFindings(outdir)), /AwsSolutions-EC23/);
    } finally {
      if (removed) acknowledgements.splice(index, 0, removed);
    }
  });

  it("a planted cfn-guard finding (an unencrypted bucket) fails even beside acknowledged findings", () => {
    const outdir = path.join(tempDir("stayup-check-planted-"), "planted");
    const app = createStayupApp({ outdir, compliance: true });
    const stack = new Stack(app, "planted", { env: { region: "eu-west-3" } });
    new s3.CfnBucket(stack, "Unencrypted", {});
    // Everything else this bare bucket trips is acknowledged, so the report holds acknowledged
    // findings of both plugins and exactly one that is not: the missing KMS encryption.
    const others = [
      "AwsSolutions::AwsSolutions-S1",
      "AwsSolutions::AwsSolutions-S10",
      ...[
        "s3_bucket_level_public_access_prohibited_check",
        "s3_bucket_versioning_enabled_check",
        "s3_bucket_logging_enabled_check",
        "s3_version_lifecycle_policy_check",
        "s3_event_notifications_enabled_check",
        "s3_bucket_acl_prohibited_check",
        "s3_lifecycle_policy_check",
        "s3_bucket_object_lock_enabled_check",
      ].map((rule) => `cdk-validator-cfnguard::${rule}`),
    ];
    for (const id of others) Validations.of(stack).acknowledge({ id, reason: "planted for this test" });
    assert.throws(
      () => synthesizeChecked(app, "planted", true),
      (error: Error) => {
        assert.match(
          error.message,
          /synthesis of planted failed: 1 unacknowledged cdk-nag\/cfn-guard finding/,
        );
        assert.match(
          error.message,
          /cdk-validator-cfnguard s3_bucket_default_encryption_kms_check: planted\/Unencrypted/,
        );
        return true;
      },
    );
    assert.deepEqual(unacknowledgedFindings(outdir), [
      {
        plugin: "cdk-validator-cfnguard",
        rule: "s3_bucket_default_encryption_kms_check",
        resources: ["planted/Unencrypted"],
      },
    ]);
    // The tests' own report check fails on it too.
    assert.throws(() => assertNoUnacknowledgedFindings(outdir), /s3_bucket_default_encryption_kms_check/);
  });

  it("cfn-guard given only the rules naming the templates' resource types finds what all 237 find", () => {
    const all = controlTowerRules();
    assert.equal(all.length, 237, "every Control Tower rule file the plugin ships");
    const some = controlTowerRulesFor(new Set(["AWS::S3::Bucket", "AWS::EC2::SecurityGroup"]));
    assert.ok(some.length > 0 && some.length < all.length / 2, `${some.length} of ${all.length} rules`);
    // Exactly the files that name one of the two types (every one names some type).
    assert.deepEqual(
      some,
      all
        .filter((r) => r.types.has("AWS::S3::Bucket") || r.types.has("AWS::EC2::SecurityGroup"))
        .map((r) => r.file),
    );
    assert.ok(all.every((r) => r.types.size > 0));
    // An unencrypted bucket and an open security group: findings of both kinds, beside a topic.
    const file = path.join(tempDir("stayup-guard-"), "t.template.json");
    writeFileSync(
      file,
      JSON.stringify({
        Resources: {
          Bucket: { Type: "AWS::S3::Bucket", Properties: {} },
          Open: {
            Type: "AWS::EC2::SecurityGroup",
            Properties: {
              GroupDescription: "open",
              SecurityGroupIngress: [{ CidrIp: "0.0.0.0/0", IpProtocol: "tcp", FromPort: 0, ToPort: 65535 }],
            },
          },
          Topic: { Type: "AWS::SNS::Topic", Properties: {} },
        },
      }),
    );
    const app = createStayupApp();
    const context = { templatePaths: [file], appConstruct: new Stack(app, "guard") };
    const full = new CfnGuardValidator({ controlTowerRulesEnabled: true }).validate(context);
    const subset = new ControlTowerGuard().validate(context);
    const rules = (r: typeof full) => r.violations.map((v) => v.ruleName).sort();
    assert.ok(rules(full).length >= 3, rules(full).join(", "));
    assert.deepEqual(rules(subset), rules(full));
    assert.deepEqual(subset, full);
  });

  it("`stayup check` runs every check for both environments and prints one summary", async () => {
    const out = tempDir("stayup-check-cli-");
    // Each environment is synthesized once per topology besides (the lifecycle rule across topologies).
    const result = await runCli(["check", "--config", configPath, "--out", out], { timeoutMs: 600_000 });
    assert.equal(result.code, 0, result.stderr + result.stdout);
    // The repository's dev and prod as the variants above are checked: every plugin's report
    // without an unacknowledged finding, cdk-nag and cfn-guard among them (cfn-lint's verdict is
    // the table's CFN-LINT column).
    for (const env of ["dev", "prod"]) {
      const plugins = assertNoUnacknowledgedFindings(path.join(out, env));
      assert.ok(plugins.includes("AwsSolutions"), `${env}: cdk-nag ran: ${plugins.join(", ")}`);
      assert.ok(
        plugins.some((p) => /cfnguard/i.test(p)),
        `${env}: cfn-guard ran: ${plugins.join(", ")}`,
      );
    }
    assert.match(result.stdout, /ENV\s+STACKS\s+CDK-NAG \+ CFN-GUARD\s+CFN-LINT\s+LIFECYCLE/);
    assert.match(
      result.stdout,
      /dev\s+6\s+0 unacknowledged \(\d+ acknowledged\)\s+0 errors, 0 warnings\s+0 violations \(\d+ rules\)/,
    );
    assert.match(
      result.stdout,
      /prod\s+6\s+0 unacknowledged \(\d+ acknowledged\)\s+0 errors, 0 warnings\s+0 violations \(\d+ rules\)/,
    );
    // No hosted zone: no failover record, so no region-loss figures, and the reason.
    assert.doesNotMatch(result.stdout, /region lost/);
    assert.match(
      result.stdout,
      /regions\.secondary \(us-east-1\) without aws\.hostedZone: no Route 53 failover record/,
    );
    // Both budgets side by side: the region is called down only after a recovery inside it.
    assert.match(
      result.stdout,
      /AWS\s+60 s \(ElastiCache failover 60 s, dead targets out 25 s\)\s+70-80 s \(8 × 10 s/,
    );
    assert.match(
      result.stdout,
      /local\s+6\.5 s \(Sentinel failover 6\.5 s, dead targets out 1\.25 s\)\s+7-8 s \(8 × 1 s/,
    );
    assert.match(result.stdout, /check: passed/);
  });

  it("`stayup check`'s one cfn-lint run gives each finding to the row whose template it names", async () => {
    const dir = tempDir("stayup-check-lint-");
    const template = (name: string, properties: Record<string, unknown>) => {
      const file = path.join(dir, `${name}.template.json`);
      writeFileSync(
        file,
        JSON.stringify({ Resources: { Topic: { Type: "AWS::SNS::Topic", Properties: properties } } }),
      );
      return file;
    };
    const clean = {
      row: ["dev", "2", "", "not run", ""],
      templateFiles: [template("a", {}), template("b", {})],
    };
    // An unknown property: cfn-lint's E3002.
    const planted = { row: ["prod", "1", "", "not run", ""], templateFiles: [template("c", { Nope: 1 })] };
    assert.equal(await lintAll([clean, planted]), false);
    assert.equal(clean.row[3], "0 errors, 0 warnings");
    assert.equal(planted.row[3], "FINDINGS");
  });

  it("`stayup deploy` without credentials fails before anything is created", async () => {
    const dir = tempDir();
    const result = await runCli(["deploy", "--env", "dev", "--config", configPath], {
      cwd: dir,
      env: noCredentials(dir),
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no usable AWS credentials/);
    assert.match(result.stderr, /nothing was created/);
    assert.doesNotMatch(result.stderr, /NodeVersionSupportWarning/);
  });
});
