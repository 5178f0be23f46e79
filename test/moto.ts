/**
 * What the moto_server deploy tests share: a moto_server on a free loopback port, the resource
 * types its CloudFormation cannot create (with where each is proven instead), stand-in outputs for
 * them, and creating one stack and waiting for it.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import {
  type CloudFormationClient,
  CreateStackCommand,
  DeleteStackCommand,
  DescribeStacksCommand,
  ListStackResourcesCommand,
  UpdateStackCommand,
} from "@aws-sdk/client-cloudformation";
import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  HeadBucketCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import * as ec2 from "@aws-sdk/client-ec2";
import * as ecs from "@aws-sdk/client-ecs";
import * as elbv2 from "@aws-sdk/client-elastic-load-balancing-v2";
import { findExecutable, findFreePort, sleep } from "../src/shared/net.ts";
import { tempDir } from "./helpers.ts";

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

interface AssetManifest {
  files: Record<
    string,
    {
      source: { path: string; packaging?: "file" | "zip" };
      destinations: Record<string, { bucketName: string; objectKey: string; region: string }>;
    }
  >;
}

/**
 * What `cdk deploy` does before creating a stack: uploads its file assets (the Lambda code, the
 * web-service bundle) to the bootstrap bucket, zipping directories. Here into moto's S3.
 */
export async function publishAssets(
  outdir: string,
  stackName: string,
  s3For: (region: string) => S3Client,
): Promise<number> {
  const manifest = JSON.parse(
    readFileSync(path.join(outdir, `${stackName}.assets.json`), "utf8"),
  ) as AssetManifest;
  let published = 0;
  for (const asset of Object.values(manifest.files)) {
    const source = path.join(outdir, asset.source.path);
    let body: Buffer;
    if (asset.source.packaging === "zip") {
      const zip = path.join(tempDir("stayup-asset-"), "asset.zip");
      // Python's zipfile: moto_server already needs Python, and "." puts the files at the root.
      execFileSync("python3", ["-m", "zipfile", "-c", zip, "."], { cwd: source });
      body = readFileSync(zip);
    } else {
      body = readFileSync(source);
    }
    for (const dest of Object.values(asset.destinations)) {
      const bucket = dest.bucketName
        .replace("${AWS::AccountId}", MOTO_ACCOUNT)
        .replace("${AWS::Region}", dest.region);
      const s3 = s3For(dest.region);
      try {
        await s3.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch {
        await s3.send(
          new CreateBucketCommand({
            Bucket: bucket,
            CreateBucketConfiguration:
              dest.region === "us-east-1"
                ? undefined
                : { LocationConstraint: dest.region as BucketLocationConstraint },
          }),
        );
      }
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: dest.objectKey, Body: body }));
      published++;
    }
  }
  return published;
}

/** A stack's status and outputs; undefined once it is gone (DescribeStacks: "does not exist"). */
export async function describeStack(
  cfn: CloudFormationClient,
  stackName: string,
): Promise<{ status: string; outputs: Record<string, string> } | undefined> {
  try {
    const stack = (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
    if (!stack || stack.StackStatus === "DELETE_COMPLETE") return undefined;
    return {
      status: stack.StackStatus ?? "",
      outputs: Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey ?? "", o.OutputValue ?? ""])),
    };
  } catch (error) {
    if (/does not exist/.test((error as Error).message)) return undefined;
    throw error;
  }
}

async function waitForStack(cfn: CloudFormationClient, stackName: string, ok: string): Promise<string> {
  let status = "";
  for (let i = 0; i < 300; i++) {
    const found = await describeStack(cfn, stackName);
    status = found?.status ?? "DELETE_COMPLETE";
    if (status.endsWith("_COMPLETE") || status.endsWith("_FAILED")) break;
    await sleep(100);
  }
  assert.equal(status, ok, `${stackName}: ${status}`);
  return status;
}

/**
 * Updates one stack to `template` and waits; asserts UPDATE_COMPLETE. Returns false when
 * CloudFormation has nothing to change ("No updates are to be performed"), as `cdk deploy` skips it.
 */
export async function updateStack(
  cfn: CloudFormationClient,
  stackName: string,
  template: Template,
): Promise<boolean> {
  try {
    await cfn.send(
      new UpdateStackCommand({
        StackName: stackName,
        TemplateBody: JSON.stringify(template),
        Capabilities: ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
      }),
    );
  } catch (error) {
    if (/No updates are to be performed/.test((error as Error).message)) return false;
    throw error;
  }
  await waitForStack(cfn, stackName, "UPDATE_COMPLETE");
  return true;
}

/** Deletes one stack and waits until DescribeStacks no longer finds it. */
export async function deleteStack(cfn: CloudFormationClient, stackName: string): Promise<void> {
  await cfn.send(new DeleteStackCommand({ StackName: stackName }));
  await waitForStack(cfn, stackName, "DELETE_COMPLETE");
}

/**
 * moto's CloudFormation deletes only the resource types it has a delete handler for; the others
 * (route tables, NAT gateways, Elastic IPs, ECS, ELBv2 listeners, rules and target groups) stay,
 * so the VPC's deletion fails and a redeploy meets its own leftovers. What CloudFormation would
 * delete (every resource without DeletionPolicy Retain or Snapshot) is deleted here through each
 * service's API first, then the stack. Returns the types it deleted this way.
 */
export async function deleteStackAsCloudFormationWould(
  clients: MotoDeleteClients,
  stackName: string,
  template: Template,
): Promise<string[]> {
  try {
    return await deleteAsCloudFormationWould(clients, stackName, template);
  } catch (error) {
    (error as Error).message = `deleting ${stackName}: ${(error as Error).message}`;
    throw error;
  }
}

async function deleteAsCloudFormationWould(
  clients: MotoDeleteClients,
  stackName: string,
  template: Template,
): Promise<string[]> {
  const summaries =
    (await clients.cfn.send(new ListStackResourcesCommand({ StackName: stackName })))
      .StackResourceSummaries ?? [];
  const kept = (logicalId: string) => {
    const policy = (template.Resources[logicalId] as { DeletionPolicy?: string } | undefined)?.DeletionPolicy;
    return policy === "Retain" || policy === "RetainExceptOnCreate" || policy === "Snapshot";
  };
  const byType = (type: string) =>
    summaries
      .filter((s) => s.ResourceType === type && s.PhysicalResourceId && !kept(s.LogicalResourceId ?? ""))
      .map((s) => s.PhysicalResourceId as string);
  const done = new Set<string>();
  const each = async (type: string, del: (id: string) => Promise<unknown>) => {
    for (const id of byType(type)) {
      await del(id).catch((error: Error) => {
        error.message = `${type} ${id}: ${error.message}`;
        const status = (error as { $response?: { statusCode?: number } }).$response?.statusCode;
        if (status !== 404 && !/NotFound|not found|does not exist/i.test(`${error.name} ${error.message}`))
          throw error;
      });
      done.add(type);
    }
  };
  // The ECS service before its cluster; route tables before the VPC.
  await each("AWS::ECS::Service", async (arn) => {
    const cluster = arn.split("/").at(-2);
    await clients.ecs.send(new ecs.DeleteServiceCommand({ cluster, service: arn, force: true }));
  });
  await each("AWS::ECS::Cluster", (name) =>
    clients.ecs.send(new ecs.DeleteClusterCommand({ cluster: name })),
  );
  await each("AWS::ECS::TaskDefinition", (arn) =>
    clients.ecs.send(new ecs.DeregisterTaskDefinitionCommand({ taskDefinition: arn })),
  );

  // A listener rule may sit on another stack's listener and keep a target group in use: gone first.
  await each("AWS::ElasticLoadBalancingV2::ListenerRule", (arn) =>
    clients.elbv2.send(new elbv2.DeleteRuleCommand({ RuleArn: arn })),
  );

  await each("AWS::EC2::NatGateway", (id) =>
    clients.ec2.send(new ec2.DeleteNatGatewayCommand({ NatGatewayId: id })),
  );
  for (const id of byType("AWS::EC2::RouteTable")) {
    const table = (await clients.ec2.send(new ec2.DescribeRouteTablesCommand({ RouteTableIds: [id] })))
      .RouteTables?.[0];
    for (const a of table?.Associations ?? []) {
      if (a.RouteTableAssociationId && !a.Main)
        await clients.ec2.send(
          new ec2.DisassociateRouteTableCommand({ AssociationId: a.RouteTableAssociationId }),
        );
    }
    await clients.ec2.send(new ec2.DeleteRouteTableCommand({ RouteTableId: id }));
    done.add("AWS::EC2::RouteTable");
  }
  await each("AWS::EC2::EIP", async (ip) => {
    const address = (await clients.ec2.send(new ec2.DescribeAddressesCommand({ PublicIps: [ip] })))
      .Addresses?.[0];
    if (address?.AllocationId)
      await clients.ec2.send(new ec2.ReleaseAddressCommand({ AllocationId: address.AllocationId }));
  });
  await deleteStack(clients.cfn, stackName);
  // Target groups (and listeners not on this stack's load balancer) after the stack: moto deletes
  // the load balancer and its listeners itself, and its group deletion deregisters from the target
  // groups, so they must outlive both. Only by the physical ids this stack had.
  await each("AWS::ElasticLoadBalancingV2::Listener", (arn) =>
    clients.elbv2.send(new elbv2.DeleteListenerCommand({ ListenerArn: arn })),
  );
  await each("AWS::ElasticLoadBalancingV2::TargetGroup", (arn) =>
    clients.elbv2.send(new elbv2.DeleteTargetGroupCommand({ TargetGroupArn: arn })),
  );
  return [...done].sort();
}

export interface MotoDeleteClients {
  cfn: CloudFormationClient;
  ec2: ec2.EC2Client;
  ecs: ecs.ECSClient;
  elbv2: elbv2.ElasticLoadBalancingV2Client;
}
