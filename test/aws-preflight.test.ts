/**
 * `stayup deploy`'s preflight against moto_server: a fresh account (no CDK bootstrap, no ECS
 * service-linked role, Elastic IPs near the default quota, no hosted zone) gets one list of what is
 * missing with the command that fixes each; once fixed, the list is empty.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AllocateAddressCommand, EC2Client, ReleaseAddressCommand } from "@aws-sdk/client-ec2";
import { CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateHostedZoneCommand, Route53Client } from "@aws-sdk/client-route-53";
import { PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import {
  ELASTIC_IP_DEFAULT_QUOTA,
  formatPreflight,
  preflight,
  type PreflightStack,
} from "../src/aws/preflight.ts";
import { description, inHostedZone, synth } from "./aws-helpers.ts";
import { MOTO_ACCOUNT, type Moto, startMoto } from "./moto.ts";

/**
 * moto_server does not serve Service Quotas' EC2 quotas (it answers GetServiceQuota with an error
 * page): the quota is a new account's default, 5, as AWS documents it.
 */
const newAccountQuota = async () => ELASTIC_IP_DEFAULT_QUOTA;

describe("stayup deploy's preflight (moto_server)", { timeout: 120_000 }, () => {
  let moto: Moto | undefined;
  const config = (region: string) => {
    assert.ok(moto);
    return moto.clientConfig(region);
  };
  const stacksOf = (s: ReturnType<typeof synth>): PreflightStack[] =>
    s.order.map((name) => ({
      name,
      region: s.regions[name] as string,
      template: s.json[name.replace(/^stayup-(dev|prod)-/, "")] as PreflightStack["template"],
    }));
  let ecsProd: { stack: Awaited<ReturnType<typeof description>>; stacks: PreflightStack[] };

  before(async () => {
    // startMoto bootstraps the regions it is given: us-west-2 only, so eu-west-3 is not.
    moto = await startMoto(["us-west-2"]);
    const stack = await description("prod", (d) => {
      d.topology = "ecs";
      inHostedZone(d, { id: "Z0123456789ABCDEFGHIJ", name: "example.com" });
    });
    ecsProd = { stack, stacks: stacksOf(synth(stack, false, `prod-${"a".repeat(40)}`)) };
  });
  after(() => moto?.stop());

  it("a fresh account: bootstrap, the ECS role, the Elastic IP quota and the zone are listed with their fixes", async () => {
    const ec2 = new EC2Client(config("eu-west-3"));
    // Two addresses already in use: prod's three NAT gateways would make 5 + ... over the quota of 5.
    const allocated = [];
    for (let i = 0; i < 3; i++) allocated.push(await ec2.send(new AllocateAddressCommand({ Domain: "vpc" })));
    const problems = await preflight(ecsProd.stack, MOTO_ACCOUNT, ecsProd.stacks, config, newAccountQuota);
    assert.deepEqual(
      problems.map((p) => p.check),
      ["bootstrap", "ecs-service-linked-role", "elastic-ip-quota", "hosted-zone"],
    );
    assert.equal(problems[0]?.fix, `npx cdk bootstrap aws://${MOTO_ACCOUNT}/eu-west-3`);
    assert.equal(problems[1]?.fix, "aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com");
    assert.match(problems[2]?.problem ?? "", /3 Elastic IP\(s\) to allocate, 3 already allocated, quota 5/);
    assert.match(problems[2]?.fix ?? "", /--quota-code L-0263D0A3 --desired-value 6/);
    assert.match(problems[3]?.problem ?? "", /Z0123456789ABCDEFGHIJ \(example.com\) does not exist/);
    const text = formatPreflight(problems);
    assert.match(text, /4 to fix, nothing was changed/);
    for (const p of problems) assert.ok(text.includes(p.fix));
    for (const a of allocated) await ec2.send(new ReleaseAddressCommand({ AllocationId: a.AllocationId }));
  });

  it("once each is fixed the list is empty; a deployed stack's addresses are not counted twice", async () => {
    await new SSMClient(config("eu-west-3")).send(
      new PutParameterCommand({ Name: "/cdk-bootstrap/hnb659fds/version", Value: "30", Type: "String" }),
    );
    // What `aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com` creates; moto's
    // CreateServiceLinkedRole names it AWSServiceRoleForecs (lower case), so it is made as AWS names it.
    await new IAMClient(config("eu-west-3")).send(
      new CreateRoleCommand({
        RoleName: "AWSServiceRoleForECS",
        Path: "/aws-service-role/ecs.amazonaws.com/",
        AssumeRolePolicyDocument: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            { Effect: "Allow", Principal: { Service: "ecs.amazonaws.com" }, Action: "sts:AssumeRole" },
          ],
        }),
      }),
    );
    const zone = await new Route53Client(config("us-east-1")).send(
      new CreateHostedZoneCommand({ Name: "example.com", CallerReference: "preflight" }),
    );
    const id = (zone.HostedZone?.Id ?? "").replace("/hostedzone/", "");
    const stack = structuredClone(ecsProd.stack);
    stack.aws.hostedZone = { id, name: "example.com" };
    assert.deepEqual(await preflight(stack, MOTO_ACCOUNT, ecsProd.stacks, config, newAccountQuota), []);
    // The network is deployed and holds its 3 addresses: a redeploy needs none more.
    const ec2 = new EC2Client(config("eu-west-3"));
    for (let i = 0; i < 3; i++) await ec2.send(new AllocateAddressCommand({ Domain: "vpc" }));
    const deployed = ecsProd.stacks.map((s) => ({ ...s, deployed: true }));
    assert.deepEqual(await preflight(stack, MOTO_ACCOUNT, deployed, config, newAccountQuota), []);
    // A zone id that names another zone is caught too.
    const wrong = structuredClone(stack);
    if (wrong.aws.hostedZone) wrong.aws.hostedZone.name = "example.org";
    assert.deepEqual(
      (await preflight(wrong, MOTO_ACCOUNT, deployed, config)).map((p) => p.check),
      ["hosted-zone"],
    );
  });
});
