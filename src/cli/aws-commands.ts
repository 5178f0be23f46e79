import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, Option } from "commander";
import { requireCredentials, runCdk, stackOutputs } from "../aws/deploy.ts";
import { formatFailoverModel, modelFailover } from "../aws/failover-model.ts";
import { rendersDnsFailover } from "../aws/naming.ts";
import { cfnLint, type Synthesis, synthesize } from "../aws/synth.ts";
import { StayupError } from "../shared/errors.ts";
import { formatTable } from "../shared/table.ts";
import { type EnvironmentName, environmentNames, loadStack } from "../stack/index.ts";
import { configOption, envOption } from "./options.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface AwsOptions {
  config: string;
  env: EnvironmentName;
}

function cdkArgs(command: string, opts: AwsOptions, extra: string[] = []): string[] {
  return [
    command,
    "--all",
    "--app",
    `node ${path.join(repoRoot, "bin/cdk-app.mjs")}`,
    "--output",
    path.join(repoRoot, "cdk.out", opts.env),
    "-c",
    `env=${opts.env}`,
    "-c",
    `config=${path.resolve(opts.config)}`,
    ...extra,
  ];
}

export function registerAwsCommands(program: Command): void {
  program
    .command("synth")
    .description("render the stack description as CloudFormation (AWS CDK); needs no credentials")
    .addOption(configOption())
    .addOption(
      new Option("-e, --env <environment>", "environment")
        .choices([...environmentNames, "all"])
        .default("all"),
    )
    .option("-o, --out <dir>", "output directory (one assembly per environment)", "cdk.out")
    .action(async (opts: { config: string; env: EnvironmentName | "all"; out: string }) => {
      const envs = opts.env === "all" ? environmentNames : [opts.env];
      for (const env of envs) {
        const stack = await loadStack(opts.config, env);
        const result = synthesize(stack, path.resolve(opts.out, env));
        console.log(`${env}: ${result.stacks.length} stacks in deployment order`);
        console.log(
          formatTable([
            ["STACK", "REGION", "TEMPLATE"],
            ...result.stacks.map((s) => [s.name, s.region, path.relative(process.cwd(), s.templateFile)]),
          ]),
        );
      }
    });

  program
    .command("check")
    .description(
      "offline proof of the AWS stacks: cdk-nag, cfn-guard (Control Tower) and cfn-lint for every environment",
    )
    .addOption(configOption())
    .option("-o, --out <dir>", "where the checked assemblies are written", "cdk.out")
    .action(async (opts: { config: string; out: string }) => {
      const rows: string[][] = [["ENV", "STACKS", "CDK-NAG + CFN-GUARD", "CFN-LINT"]];
      let failed = false;
      for (const env of environmentNames) {
        const stack = await loadStack(opts.config, env);
        process.stderr.write(`checking ${env}: synthesis with cdk-nag and cfn-guard...\n`);
        let synthesis: Synthesis | undefined;
        let compliance: string;
        try {
          synthesis = synthesize(stack, path.resolve(opts.out, env), { compliance: true });
          compliance = `0 unacknowledged (${synthesis.acknowledged} acknowledged)`;
        } catch (error) {
          failed = true;
          compliance = "FINDINGS (report above)";
          console.error((error as Error).message);
        }
        let lint = "not run";
        if (synthesis) {
          process.stderr.write(`checking ${env}: cfn-lint...\n`);
          const result = await cfnLint(synthesis.stacks.map((s) => s.templateFile));
          lint = result.ok ? "0 errors, 0 warnings" : "FINDINGS";
          if (!result.ok) {
            failed = true;
            console.error(result.output);
          }
        }
        rows.push([env, String(synthesis?.stacks.length ?? "-"), compliance, lint]);
      }
      console.log(formatTable(rows));
      const prod = await loadStack(opts.config, "prod");
      if (prod.regions.secondary && prod.aws.topology === "load-balanced" && !rendersDnsFailover(prod)) {
        console.log(
          "\nRoute 53 failover is not rendered: set aws.hostedZone (a public zone that holds dns.name) to add the dns-failover stack (failover records, health checks, alarms, failover/failback Lambdas).",
        );
      }
      console.log(`\n${formatFailoverModel(modelFailover(prod))}\n`);
      console.log(failed ? "check: FAILED" : "check: passed");
      if (failed) process.exitCode = 1;
    });

  program
    .command("deploy")
    .description("deploy the stacks to AWS in dependency order (network → access → database → web)")
    .addOption(configOption())
    .addOption(envOption())
    .action(async (opts: AwsOptions) => {
      const stack = await loadStack(opts.config, opts.env);
      const identity = await requireCredentials(stack.regions.primary.name);
      console.error(
        `deploying ${stack.name} ${opts.env} to account ${identity.account} in ${stack.regions.primary.name} as ${identity.arn}`,
      );
      const code = await runCdk(
        cdkArgs("deploy", opts, ["--require-approval", "never", "--progress", "events"]),
        {
          CDK_DEFAULT_ACCOUNT: identity.account,
        },
      );
      if (code !== 0) throw new StayupError(`cdk deploy exited with ${code}`, "see its output above");
      for (const o of await stackOutputs(stack)) console.log(`${o.key}: ${o.value}`);
    });

  program
    .command("destroy")
    .description("delete the stacks from AWS in reverse dependency order")
    .addOption(configOption())
    .addOption(envOption())
    .action(async (opts: AwsOptions) => {
      const stack = await loadStack(opts.config, opts.env);
      const identity = await requireCredentials(stack.regions.primary.name);
      if (stack.deletionProtection) {
        console.error(
          `${opts.env} has deletion protection: turn deletionProtection off for it in the description and deploy first`,
        );
      }
      const code = await runCdk(cdkArgs("destroy", opts, ["--force"]), {
        CDK_DEFAULT_ACCOUNT: identity.account,
      });
      if (code !== 0) throw new StayupError(`cdk destroy exited with ${code}`, "see its output above");
    });

  program
    .command("outputs")
    .description("print the deployed stack's outputs (load-balancer URL, public IP)")
    .addOption(configOption())
    .addOption(envOption())
    .option("--json", "as JSON")
    .action(async (opts: AwsOptions & { json?: boolean }) => {
      const stack = await loadStack(opts.config, opts.env);
      await requireCredentials(stack.regions.primary.name);
      const outputs = await stackOutputs(stack);
      if (opts.json) console.log(JSON.stringify(outputs, null, 2));
      else for (const o of outputs) console.log(`${o.key}: ${o.value}`);
    });
}
