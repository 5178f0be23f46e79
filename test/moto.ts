/**
 * What the moto_server deploy tests share: a moto_server on a free loopback port, the resource
 * types its CloudFormation cannot create (with where each is proven instead), stand-in outputs for
 * them, and creating one stack and waiting for it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  type CloudFormationClient,
  CreateStackCommand,
  DescribeStacksCommand,
} from "@aws-sdk/client-cloudformation";
import { PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { findExecutable, findFreePort, sleep } from "../src/shared/net.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

/** moto's account: the templates name the CDK asset bucket after it, and ARNs carry it. */
export const MOTO_ACCOUNT = "123456789012";

export type TemplateResource = { Type: string; Properties?: Record<string, unknown> };
export type Template = {
  Resources: Record<string, TemplateResource>;
  Outputs?: Record<string, { Value: unknown }>;
};

/** Resource types moto's CloudFormation cannot create in every topology, and where they are proven. */
export const NOT_IN_MOTO_COMMON: Record<string, string> = {
  "AWS::ElastiCache::ReplicationGroup": "aws-stacks.test.ts: encryption, AUTH, Multi-AZ, subnets",
  "AWS::ElastiCache::SubnetGroup": "aws-stacks.test.ts: isolated subnets",
  "AWS::SecretsManager::Secret": "aws-stacks.test.ts: generated 64-character token",
  "AWS::EC2::SecurityGroupEgress": "aws-moto-deploy.test.ts: egress rules asserted on the template",
  "AWS::S3::BucketPolicy": "synthesis: cdk-nag S10 (SSL only) passes",
  "AWS::SNS::TopicPolicy": "synthesis: cdk-nag SNS3 (SSL only) passes",
  "AWS::CDK::Metadata": "CDK's version report; nothing to deploy",
};

export interface Moto {
  endpoint: string;
  /** SDK client settings for moto in `region` (the primary region by default). */
  clientConfig(region?: string): {
    region: string;
    endpoint: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  stop(): void;
}

/**
 * Starts moto_server on a free loopback port and leaves in each of `regions` what `cdk bootstrap`
 * leaves in an account: the version parameter the templates check. MOTO_LOG=1 shows moto's own
 * log (its tracebacks explain a failed stack).
 */
export async function startMoto(regions: readonly [string, ...string[]]): Promise<Moto> {
  assert.ok(findExecutable("moto_server"), "moto_server must be on PATH (pip install 'moto[server]')");
  const port = await findFreePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn("moto_server", ["-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", "ignore", process.env.MOTO_LOG ? "inherit" : "ignore"],
  });
  const moto: Moto = {
    endpoint,
    clientConfig: (region = regions[0]) => ({
      region,
      endpoint,
      credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    }),
    stop: () => void child.kill("SIGTERM"),
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await fetch(`${endpoint}/moto-api/`);
      break;
    } catch {
      if (Date.now() > deadline) {
        moto.stop();
        throw new Error("moto_server did not start");
      }
      await sleep(200);
    }
  }
  for (const region of regions) {
    await new SSMClient(moto.clientConfig(region)).send(
      new PutParameterCommand({ Name: "/cdk-bootstrap/hnb659fds/version", Value: "30", Type: "String" }),
    );
  }
  return moto;
}

/**
 * Outputs that point at a resource moto cannot create get a stand-in value of the right shape
 * (in place); returns what was stood in.
 */
export function standInOutputs(
  template: Template,
  notInMoto: Record<string, string>,
  standInFor: (type: string, target: string, attr: string | undefined) => string | undefined = () =>
    undefined,
): string[] {
  const standIns: string[] = [];
  for (const [name, output] of Object.entries(template.Outputs ?? {})) {
    const value = output.Value as { Ref?: string; "Fn::GetAtt"?: [string, string] };
    const target = value.Ref ?? value["Fn::GetAtt"]?.[0];
    const type = target ? template.Resources[target]?.Type : undefined;
    if (!target || !type || !notInMoto[type]) continue;
    const attr = value["Fn::GetAtt"]?.[1];
    output.Value =
      standInFor(type, target, attr) ??
      (type === "AWS::SecretsManager::Secret"
        ? `arn:aws:secretsmanager:eu-west-3:${MOTO_ACCOUNT}:secret:moto-stand-in-${target}`
        : attr === "PrimaryEndPoint.Port"
          ? "6379"
          : `moto-stand-in-${target}.cache.amazonaws.com`);
    standIns.push(`${name} (${type})`);
  }
  return standIns;
}

/** Creates one stack from `template` and waits for it; asserts CREATE_COMPLETE and returns its outputs. */
export async function createStack(
  cfn: CloudFormationClient,
  stackName: string,
  template: Template,
): Promise<Record<string, string>> {
  await cfn.send(
    new CreateStackCommand({
      StackName: stackName,
      TemplateBody: JSON.stringify(template),
      Capabilities: ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    }),
  );
  let status = "";
  let outputs: Record<string, string> = {};
  for (let i = 0; i < 100 && !status.endsWith("_COMPLETE") && !status.endsWith("_FAILED"); i++) {
    const res = await cfn.send(new DescribeStacksCommand({ StackName: stackName }));
    status = res.Stacks?.[0]?.StackStatus ?? "";
    outputs = Object.fromEntries(
      (res.Stacks?.[0]?.Outputs ?? []).map((o) => [o.OutputKey ?? "", o.OutputValue ?? ""]),
    );
    if (!status.endsWith("_COMPLETE")) await sleep(200);
  }
  assert.equal(status, "CREATE_COMPLETE", `${stackName}: ${status}`);
  return outputs;
}
