import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { CfnGuardValidator } from "@cdklabs/cdk-validator-cfnguard";
import { App, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as ecr from "aws-cdk-lib/aws-ecr";
import { ciAccounts, type CiSynthesis, requireCi, synthesizeCi } from "../src/aws/ci/ci-app.ts";
import { type CiEnvironmentAccess, CiStack, githubSubject } from "../src/aws/ci/ci-stack.ts";
import { ciAcknowledgements } from "../src/aws/compliance/acknowledgements.ts";
import { createStayupApp, synthesizeChecked, unacknowledgedFindings } from "../src/aws/compliance/checks.ts";
import { deploymentOrder, imageRepositories } from "../src/aws/plan.ts";
import { checkAccount } from "../src/aws/deploy.ts";
import { cfnLint } from "../src/aws/synth.ts";
import type { StayupError } from "../src/shared/errors.ts";
import {
  type EnvironmentName,
  type ResolvedStack,
  resolveStack,
  type StackDescription,
  StackValidationError,
  validateStack,
} from "../src/stack/index.ts";
import { inHostedZone, noCredentials } from "./aws-helpers.ts";
import { repoRoot, runCli, tempDir } from "./helpers.ts";

const github = {
  owner: "octo-org",
  repository: "stayup",
  branch: "main",
  protectedEnvironments: ["prod" as const],
};

async function descriptions(change?: (d: StackDescription) => void) {
  const input = structuredClone((await import("../stayup.config.ts")).default);
  input.ci = { github: structuredClone(github) };
  change?.(input);
  const valid = validateStack(input);
  return { dev: resolveStack(valid, "dev"), prod: resolveStack(valid, "prod") } satisfies Record<
    EnvironmentName,
    ResolvedStack
  >;
}

type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Effect: string };
type Json = Record<string, unknown>;

/** The policy statements attached to one environment's deploy role. */
function statementsOf(template: Json, env: EnvironmentName): Statement[] {
  const resources = template.Resources as Record<string, { Type: string; Properties: Json }>;
  const [roleId] = Object.entries(resources).find(
    ([, r]) => r.Type === "AWS::IAM::Role" && r.Properties.RoleName === `stayup-ci-deploy-${env}`,
  ) ?? [undefined];
  assert.ok(roleId, `the ${env} deploy role`);
  return Object.values(resources)
    .filter((r) => r.Type === "AWS::IAM::Policy" && JSON.stringify(r.Properties.Roles).includes(roleId))
    .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);
/** A resource with CloudFormation's Fn::Join and Refs flattened to text, as IAM will see it. */
function arnText(r: unknown): string {
  if (typeof r === "string") return r;
  const join = (r as { "Fn::Join"?: [string, unknown[]] })["Fn::Join"];
  assert.ok(join, `not a string or Fn::Join: ${JSON.stringify(r)}`);
  return join[1]
    .map((part) => {
      if (typeof part === "string") return part;
      const ref = (part as { Ref?: string }).Ref;
      if (!ref?.startsWith("AWS::")) assert.fail(`unexpected part ${JSON.stringify(part)}`);
      return `<${ref.slice("AWS::".length)}>`;
    })
    .join(join[0]);
}

describe("stayup-ci stack: GitHub OIDC deploy roles", { timeout: 600_000 }, () => {
  let ci: CiSynthesis;
  let template: Template;
  let json: Json;
  before(async () => {
    ci = synthesizeCi(await descriptions(), path.join(tempDir("stayup-ci-"), "ci"), { compliance: true });
    template = Template.fromStack(ci.ciStack);
    json = template.toJSON();
  });

  it("creates GitHub's OIDC provider for the STS audience", () => {
    template.resourceCountIs("AWS::IAM::OIDCProvider", 1);
    template.hasResourceProperties("AWS::IAM::OIDCProvider", {
      Url: "https://token.actions.githubusercontent.com",
      ClientIdList: ["sts.amazonaws.com"],
    });
  });

  it("each role trusts only jobs in the GitHub environment of its name: dev's token is not prod's", () => {
    const expected: Record<EnvironmentName, string> = {
      dev: "repo:octo-org/stayup:environment:dev",
      prod: "repo:octo-org/stayup:environment:prod",
    };
    for (const [env, sub] of Object.entries(expected)) {
      template.hasResourceProperties("AWS::IAM::Role", {
        RoleName: `stayup-ci-deploy-${env}`,
        AssumeRolePolicyDocument: {
          Statement: [
            {
              Action: "sts:AssumeRoleWithWebIdentity",
              Effect: "Allow",
              Principal: { Federated: { Ref: Match.stringLikeRegexp("GitHubOidc") } },
              Condition: {
                StringEquals: {
                  "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                  "token.actions.githubusercontent.com:sub": sub,
                },
              },
            },
          ],
        },
      });
    }
    template.resourceCountIs("AWS::IAM::Role", 2);
    assert.doesNotMatch(JSON.stringify(json), /StringLike/, "no wildcard subject");
  });

  it("a role may assume its regions' CDK bootstrap roles and read its own stacks' outputs, nothing else", () => {
    for (const env of ["dev", "prod"] as const) {
      const statements = statementsOf(json, env);
      assert.deepEqual(statements.map((s) => s.Sid).sort(), [
        "AssumeCdkBootstrapRoles",
        "AssumeNothingElse",
        "ReadStackOutputs",
      ]);
      for (const s of statements) {
        assert.equal(s.Effect, s.Sid === "AssumeNothingElse" ? "Deny" : "Allow");
        for (const action of list(s.Action)) assert.doesNotMatch(action, /\*/, `${env}: action ${action}`);
      }
      const assume = statements.find((s) => s.Sid === "AssumeCdkBootstrapRoles");
      assert.deepEqual(list(assume?.Action as string[]), ["sts:AssumeRole"]);
      const bootstrapRoles = ["eu-west-3", "us-east-1"]
        .flatMap((region) =>
          ["deploy", "file-publishing"].map(
            (kind) =>
              `arn:<Partition>:iam::<AccountId>:role/cdk-hnb659fds-${kind}-role-<AccountId>-${region}`,
          ),
        )
        .sort();
      assert.deepEqual((assume?.Resource as unknown[]).map(arnText).sort(), bootstrapRoles);
      // Denied every other role, whatever is allowed elsewhere.
      const deny = statements.find((s) => s.Sid === "AssumeNothingElse") as Statement & {
        NotResource: unknown[];
      };
      assert.deepEqual(list(deny.Action), ["sts:AssumeRole"]);
      assert.deepEqual(deny.NotResource.map(arnText).sort(), bootstrapRoles);
      const read = statements.find((s) => s.Sid === "ReadStackOutputs");
      assert.deepEqual(list(read?.Action as string[]), ["cloudformation:DescribeStacks"]);
      const stackArns = (read?.Resource as unknown[]).map(arnText);
      assert.equal(stackArns.length, 6);
      for (const arn of stackArns) {
        // The only `*`: the id CloudFormation appends to a stack's ARN.
        assert.match(
          arn,
          new RegExp(
            `^arn:<Partition>:cloudformation:[a-z0-9-]+:<AccountId>:stack/stayup-${env}-[a-z-]+/\\*$`,
          ),
        );
      }
      assert.ok(stackArns.some((a) => a.includes(`:eu-west-3:<AccountId>:stack/stayup-${env}-web/*`)));
    }
  });

  it("passes cdk-nag (only the stack-id wildcards acknowledged), cfn-guard and cfn-lint", async () => {
    const report = JSON.parse(readFileSync(path.join(ci.outdir, "validation-report.json"), "utf8")) as {
      pluginReports: {
        pluginName: string;
        conclusion: string;
        suppressedViolations?: { ruleName: string }[];
      }[];
    };
    assert.deepEqual(unacknowledgedFindings(ci.outdir), []);
    const nag = report.pluginReports.find((p) => p.pluginName === "AwsSolutions");
    assert.equal(nag?.conclusion, "success");
    for (const s of nag?.suppressedViolations ?? []) {
      assert.match(s.ruleName, /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:cloudformation:.*\/\*\]$/);
    }
    // cfn-guard's plugin leaves no entry in the report when it finds nothing: run it on the template.
    const guard = new CfnGuardValidator({ controlTowerRulesEnabled: true }).validate({
      templatePaths: [ci.templateFile],
      appConstruct: ci.ciStack,
    });
    assert.deepEqual(guard.violations, []);
    assert.equal(guard.success, true);
    const lint = await cfnLint([ci.templateFile]);
    assert.equal(lint.ok, true, lint.output);
  });

  it("keeps out of the environments' stacks: its own assembly, termination-protected", () => {
    assert.equal(ci.stackName, "stayup-ci");
    for (const env of ["dev", "prod"]) {
      const names = deploymentOrder(path.join(ci.outdir, "..", env)).map((s) => s.name);
      assert.ok(names.length > 0 && !names.includes("stayup-ci"), `${env}: ${names.join(", ")}`);
    }
    assert.deepEqual(
      deploymentOrder(ci.outdir).map((s) => s.name),
      ["stayup-ci"],
    );
    const manifest = JSON.parse(readFileSync(path.join(ci.outdir, "manifest.json"), "utf8")) as {
      artifacts: Record<string, { properties?: { terminationProtection?: boolean } }>;
    };
    assert.equal(manifest.artifacts["stayup-ci"]?.properties?.terminationProtection, true);
  });

  it("with Route 53 failover, the roles also reach us-east-1's stack and CDK roles", async () => {
    const failover = synthesizeCi(await descriptions(inHostedZone), path.join(tempDir("stayup-ci-"), "ci"));
    const statements = statementsOf(Template.fromStack(failover.ciStack).toJSON(), "prod");
    const read = statements.find((s) => s.Sid === "ReadStackOutputs");
    assert.ok(
      (read?.Resource as unknown[])
        .map(arnText)
        .includes("arn:<Partition>:cloudformation:us-east-1:<AccountId>:stack/stayup-prod-dns-failover/*"),
    );
  });

  it("uses the account's existing OIDC provider when the description names it", async () => {
    const arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
    const existing = synthesizeCi(
      await descriptions((d) => {
        if (d.ci) d.ci.oidcProviderArn = arn;
      }),
      path.join(tempDir("stayup-ci-"), "ci"),
    );
    const t = Template.fromStack(existing.ciStack);
    t.resourceCountIs("AWS::IAM::OIDCProvider", 0);
    t.hasResourceProperties("AWS::IAM::Role", {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Federated: arn } })] },
    });
  });
});

/** dev's access: its network stack and its image repository. */
const devWithImages: CiEnvironmentAccess = {
  environment: "dev",
  stacks: [{ name: "stayup-dev-network", region: "eu-west-3" }],
  imageRepositories: [{ name: "stayup-dev-web", region: "eu-west-3" }],
};

/**
 * The CI stack giving `environments` their access, synthesized with the compliance checks (its
 * acknowledgements applied; fails on any other cdk-nag or cfn-guard finding), and the policy
 * statements of dev's deploy role.
 */
function checkedCiStatements(
  dev: ResolvedStack,
  environments: CiEnvironmentAccess[],
  outdirPrefix: string,
): Statement[] {
  const app = createStayupApp({ outdir: path.join(tempDir(outdirPrefix), "ci"), compliance: true });
  const stack = new CiStack(app, "stayup-ci", { stack: dev, env: { region: "eu-west-3" }, environments });
  for (const ack of ciAcknowledgements(environments)) {
    Validations.of(stack).acknowledge({ id: ack.id, reason: ack.reason });
  }
  assert.doesNotThrow(
    () => synthesizeChecked(app, "the CI stack", true),
    "no unacknowledged cdk-nag or cfn-guard finding",
  );
  return statementsOf(Template.fromStack(stack).toJSON(), "dev");
}

describe("stayup-ci: image repositories (ECS topology)", () => {
  it("an environment's role may push only to its repositories; `*` only for ECR's login (cdk-nag, cfn-guard pass)", async () => {
    const { dev } = await descriptions();
    const statements = checkedCiStatements(dev, [devWithImages], "stayup-ci-ecr-");
    const star = statements.filter((s) => list(s.Resource as string[]).includes("*"));
    assert.deepEqual(
      star.map((s) => s.Action),
      ["ecr:GetAuthorizationToken"],
    );
    const push = statements.find((s) => s.Sid === "PushImage");
    assert.ok(list(push?.Action as string[]).includes("ecr:PutImage"));
    assert.deepEqual(list(push?.Resource as string[]).map(arnText), [
      "arn:<Partition>:ecr:eu-west-3:<AccountId>:repository/stayup-dev-web",
    ]);
  });

  it("with ECS, a role may also do what destroy does first, on its own service and group only", async () => {
    const { dev } = await descriptions();
    const ecsTeardown = {
      region: "eu-west-3",
      cluster: "stayup-dev",
      service: "stayup-dev-web",
      group: "stayup-dev-ecs",
    };
    const statements = checkedCiStatements(dev, [{ ...devWithImages, ecsTeardown }], "stayup-ci-ecs-");
    const ecs = statements.find((s) => s.Sid === "EcsTeardown");
    assert.deepEqual(list(ecs?.Action as string[]).sort(), ["ecs:DescribeServices", "ecs:UpdateService"]);
    assert.deepEqual(list(ecs?.Resource as string[]).map(arnText), [
      "arn:<Partition>:ecs:eu-west-3:<AccountId>:service/stayup-dev/stayup-dev-web",
    ]);
    const group = statements.find((s) => s.Sid === "ContainerInstancesTeardown");
    assert.deepEqual(list(group?.Resource as string[]).map(arnText), [
      "arn:<Partition>:autoscaling:eu-west-3:<AccountId>:autoScalingGroup:*:autoScalingGroupName/stayup-dev-ecs",
    ]);
    const star = statements.filter((s) => list(s.Resource as string[]).includes("*"));
    assert.deepEqual(star.map((s) => s.Action).sort(), [
      "autoscaling:DescribeAutoScalingGroups",
      "ecr:GetAuthorizationToken",
    ]);
  });

  it("the repositories are found in the synthesized app by their fixed names; an unnamed one is an error", () => {
    const app = new App({ outdir: path.join(tempDir("stayup-ecr-"), "dev") });
    const registry = new Stack(app, "stayup-dev-registry", { env: { region: "eu-west-3" } });
    new ecr.Repository(registry, "Web", {
      repositoryName: "stayup-dev-web",
      removalPolicy: RemovalPolicy.DESTROY,
    });
    app.synth();
    const outdir = app.outdir;
    assert.deepEqual(imageRepositories(deploymentOrder(outdir)), [
      { name: "stayup-dev-web", region: "eu-west-3", stack: "stayup-dev-registry" },
    ]);
    const unnamed = new App({ outdir: path.join(tempDir("stayup-ecr-"), "dev") });
    new ecr.Repository(new Stack(unnamed, "stayup-dev-registry"), "Web");
    unnamed.synth();
    assert.throws(() => imageRepositories(deploymentOrder(unnamed.outdir)), /has no fixed name/);
  });
});

describe("stayup-ci: the description and the command", () => {
  it("rejects a bad ci field with its path", async () => {
    await assert.rejects(
      descriptions((d) => {
        if (!d.ci) return;
        d.ci.github.owner = "not a name";
        (d.ci.github.protectedEnvironments as string[]) = ["staging"];
      }),
      (error: StackValidationError) => {
        const paths = error.problems.map((p) => p.path);
        assert.ok(paths.includes("ci.github.owner"), paths.join(", "));
        assert.ok(paths.includes("ci.github.protectedEnvironments[0]"), paths.join(", "));
        return true;
      },
    );
  });

  it("the issue's short form (owner, repository, branch) protects prod; every role trusts its GitHub environment", async () => {
    const { prod } = await descriptions((d) => {
      d.ci = { github: { owner: "octo-org", repository: "stayup", branch: "main" } };
    });
    assert.deepEqual(prod.ci?.github.protectedEnvironments, ["prod"]);
    assert.equal(githubSubject(requireCi(prod), "prod"), "repo:octo-org/stayup:environment:prod");
    assert.equal(githubSubject(requireCi(prod), "dev"), "repo:octo-org/stayup:environment:dev");
  });

  it("`stayup ci bootstrap` without ci in the description says what to add", async () => {
    const dir = tempDir();
    const result = await runCli(["ci", "bootstrap", "--config", path.join(repoRoot, "stayup.config.ts")], {
      cwd: dir,
      env: noCredentials(dir),
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /ci: is required/);
    assert.match(result.stderr, /protectedEnvironments/);
  });

  it("`stayup ci bootstrap` without credentials fails before anything is synthesized or created", async () => {
    const dir = tempDir();
    const config = path.join(dir, "stayup.config.ts");
    const source = readFileSync(path.join(repoRoot, "stayup.config.ts"), "utf8")
      .replace('"./src/stack/index.ts"', JSON.stringify(path.join(repoRoot, "src/stack/index.ts")))
      .replace("  environments: {", `  ci: { github: ${JSON.stringify(github)} },\n  environments: {`);
    writeFileSync(config, source);
    const result = await runCli(["ci", "bootstrap", "--config", config, "--out", path.join(dir, "out")], {
      cwd: dir,
      env: noCredentials(dir),
    });
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /no usable AWS credentials/);
    assert.match(result.stderr, /nothing was created/);
    assert.equal(existsSync(path.join(dir, "out")), false, "nothing synthesized");
  });
});

/** IAM's evaluation for one action on one resource: an explicit deny wins, else any allow, else denied. */
function allows(statements: Statement[], action: string, resource: string, account: string): boolean {
  const text = (r: unknown) => arnText(r).replaceAll("<Partition>", "aws").replaceAll("<AccountId>", account);
  const glob = (pattern: string, value: string) =>
    new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replaceAll("*", ".*")
        .replaceAll("?", ".")}$`,
    ).test(value);
  const matches = (s: Statement & { NotResource?: unknown }) => {
    if (!list(s.Action).some((a) => glob(a, action))) return false;
    if (s.NotResource !== undefined)
      return !list(s.NotResource as string[]).some((r) => glob(text(r), resource));
    return list(s.Resource as string[]).some((r) => glob(text(r), resource));
  };
  if (statements.some((s) => s.Effect === "Deny" && matches(s))) return false;
  return statements.some((s) => s.Effect === "Allow" && matches(s));
}

describe("stayup-ci: environments apart", { timeout: 600_000 }, () => {
  const DEV = "111111111111";
  const PROD = "222222222222";
  const bootstrap = (kind: string, account: string, region: string) =>
    `arn:aws:iam::${account}:role/cdk-hnb659fds-${kind}-role-${account}-${region}`;
  const inAccounts = (d: StackDescription) => {
    d.environments.dev.aws = { account: DEV };
    d.environments.prod.aws = { account: PROD };
  };

  it("with an account per environment, each account's CI stack holds only its environments' roles, naming only that account", async () => {
    const stacks = await descriptions(inAccounts);
    assert.deepEqual(ciAccounts(stacks), [DEV, PROD], "stayup check synthesizes one CI stack per account");
    const dev = synthesizeCi(stacks, path.join(tempDir("stayup-ci-"), "ci"), {
      account: DEV,
      compliance: true,
    });
    assert.deepEqual(dev.environments, ["dev"]);
    assert.deepEqual(dev.elsewhere, [{ environment: "prod", account: PROD }]);
    assert.deepEqual(
      unacknowledgedFindings(dev.outdir),
      [],
      "cdk-nag and cfn-guard pass with literal accounts",
    );
    const t = Template.fromStack(dev.ciStack);
    t.resourceCountIs("AWS::IAM::Role", 1);
    t.hasResourceProperties("AWS::IAM::Role", { RoleName: "stayup-ci-deploy-dev" });
    const text = JSON.stringify(t.toJSON());
    assert.doesNotMatch(text, new RegExp(PROD), "nothing of prod's account");
    assert.doesNotMatch(text, /stayup-prod-/, "nothing of prod's stacks");
    assert.equal(dev.ciStack.account, DEV);

    const prod = synthesizeCi(stacks, path.join(tempDir("stayup-ci-"), "ci"), { account: PROD });
    assert.deepEqual(prod.environments, ["prod"]);
    Template.fromStack(prod.ciStack).hasResourceProperties("AWS::IAM::Role", {
      RoleName: "stayup-ci-deploy-prod",
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectLike({
            Condition: {
              StringEquals: Match.objectLike({
                "token.actions.githubusercontent.com:sub": "repo:octo-org/stayup:environment:prod",
              }),
            },
          }),
        ],
      },
    });
    assert.throws(
      () => synthesizeCi(stacks, path.join(tempDir("stayup-ci-"), "ci"), { account: "333333333333" }),
      /account 333333333333 holds no environment of the description \(dev: 111111111111, prod: 222222222222\)/,
    );
  });

  it("the dev role's policy reaches nothing of prod: not prod's account, its bootstrap or deploy roles, its stacks", async () => {
    const stacks = await descriptions(inAccounts);
    const dev = synthesizeCi(stacks, path.join(tempDir("stayup-ci-"), "ci"), { account: DEV });
    const statements = statementsOf(Template.fromStack(dev.ciStack).toJSON(), "dev");
    // What dev needs works (the check can say yes)...
    assert.ok(allows(statements, "sts:AssumeRole", bootstrap("deploy", DEV, "eu-west-3"), DEV));
    assert.ok(allows(statements, "sts:AssumeRole", bootstrap("file-publishing", DEV, "us-east-1"), DEV));
    assert.ok(
      allows(
        statements,
        "cloudformation:DescribeStacks",
        `arn:aws:cloudformation:eu-west-3:${DEV}:stack/stayup-dev-web/1`,
        DEV,
      ),
    );
    // ...and nothing of prod does.
    for (const region of ["eu-west-3", "us-east-1"]) {
      for (const kind of ["deploy", "file-publishing", "image-publishing", "lookup", "cfn-exec"]) {
        assert.equal(
          allows(statements, "sts:AssumeRole", bootstrap(kind, PROD, region), DEV),
          false,
          `${kind} ${region}`,
        );
      }
    }
    for (const role of [
      `arn:aws:iam::${PROD}:role/stayup-ci-deploy-prod`,
      `arn:aws:iam::${DEV}:role/stayup-ci-deploy-prod`,
    ]) {
      assert.equal(allows(statements, "sts:AssumeRole", role, DEV), false, role);
    }
    assert.equal(
      allows(
        statements,
        "cloudformation:DescribeStacks",
        `arn:aws:cloudformation:eu-west-3:${PROD}:stack/stayup-prod-web/1`,
        DEV,
      ),
      false,
    );
    // A role the dev account has but deploys do not use (CDK's execution role, an admin role).
    assert.equal(allows(statements, "sts:AssumeRole", bootstrap("cfn-exec", DEV, "eu-west-3"), DEV), false);
    assert.equal(allows(statements, "sts:AssumeRole", `arn:aws:iam::${DEV}:role/Admin`, DEV), false);
  });

  it("in one account with regions of their own, dev's role cannot assume prod's regions' bootstrap roles (the account-wide ones it shares, it can)", async () => {
    const ACCOUNT = "444444444444";
    const stacks = await descriptions((d) => {
      d.environments.dev.regions = {
        primary: { name: "eu-west-1", availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] },
      };
    });
    assert.equal(stacks.dev.regions.primary.name, "eu-west-1");
    assert.equal(stacks.prod.regions.primary.name, "eu-west-3");
    const ci = synthesizeCi(stacks, path.join(tempDir("stayup-ci-"), "ci"));
    assert.deepEqual(ci.environments, ["dev", "prod"]);
    const dev = statementsOf(Template.fromStack(ci.ciStack).toJSON(), "dev");
    assert.ok(allows(dev, "sts:AssumeRole", bootstrap("deploy", ACCOUNT, "eu-west-1"), ACCOUNT));
    for (const region of ["eu-west-3", "us-east-1"]) {
      assert.equal(
        allows(dev, "sts:AssumeRole", bootstrap("deploy", ACCOUNT, region), ACCOUNT),
        false,
        region,
      );
    }
    assert.equal(
      allows(dev, "sts:AssumeRole", `arn:aws:iam::${ACCOUNT}:role/stayup-ci-deploy-prod`, ACCOUNT),
      false,
    );
  });

  it("rejects accounts given for some environments only, a malformed account, a provider of another account, an environment's bad regions", async () => {
    await assert.rejects(
      descriptions((d) => {
        d.environments.dev.aws = { account: DEV };
        d.environments.dev.regions = {
          primary: { name: "eu-west-1", availabilityZones: ["eu-west-1a"] },
          secondary: {
            name: "eu-west-1",
            availabilityZones: ["us-east-1a"],
            standby: { mode: "warm", warmCapacity: 99 },
            localHost: "127.0.0.2",
          },
        };
        if (d.ci)
          d.ci.oidcProviderArn =
            "arn:aws:iam::999999999999:oidc-provider/token.actions.githubusercontent.com";
      }),
      (error: StackValidationError) => {
        const problems = Object.fromEntries(error.problems.map((p) => [p.path, p.message]));
        assert.match(
          problems["environments.prod.aws.account"] ?? "",
          /is required once another environment names its account/,
        );
        assert.match(
          problems["ci.oidcProviderArn"] ?? "",
          /account 999999999999, which no environment names/,
        );
        assert.match(
          problems["environments.dev.regions.secondary.name"] ?? "",
          /must differ from the primary region/,
        );
        assert.match(
          problems["environments.dev.regions.secondary.availabilityZones[0]"] ?? "",
          /not in region eu-west-1/,
        );
        assert.match(
          problems["environments.dev.regions.secondary.standby.warmCapacity"] ?? "",
          /environments\.dev\.web\.capacity\.max/,
        );
        assert.equal(
          problems["regions.secondary.standby.warmCapacity"],
          undefined,
          "the top-level regions are prod's only",
        );
        return true;
      },
    );
    await assert.rejects(
      descriptions((d) => {
        d.environments.dev.aws = { account: "1234" };
        d.environments.prod.aws = { account: PROD };
      }),
      (error: StackValidationError) => {
        assert.deepEqual(
          error.problems.map((p) => p.path),
          ["environments.dev.aws.account"],
        );
        assert.match(error.message, /12-digit AWS account id/);
        return true;
      },
    );
  });

  it("deploy, destroy and outputs refuse credentials of another account than the environment's, before reading anything", async () => {
    const { prod } = await descriptions(inAccounts);
    assert.equal(prod.aws.account, PROD);
    assert.throws(
      () =>
        checkAccount({ account: DEV, arn: `arn:aws:sts::${DEV}:assumed-role/stayup-ci-deploy-dev/x` }, prod),
      (error: StayupError) => {
        assert.match(
          error.message,
          /credentials are for account 111111111111 .* environments\.prod\.aws\.account is 222222222222/,
        );
        assert.match(error.hint ?? "", /use credentials of account 222222222222 for prod/);
        return true;
      },
    );
    assert.doesNotThrow(() => checkAccount({ account: PROD, arn: "x" }, prod));
    const { dev } = await descriptions();
    assert.doesNotThrow(() => checkAccount({ account: DEV, arn: "x" }, dev), "no account named: any");
  });
});
