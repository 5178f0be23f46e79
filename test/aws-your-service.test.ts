/**
 * Issue 23 on AWS: every topology deploys the user's service (webService.start / webService.aws), not
 * the built-in counter. CDK assertions on the synthesized templates, the ECS prelude run by a real
 * /bin/sh, and the checks (cdk-nag, cfn-guard, lifecycle rules, cfn-lint), cost and diagram on each.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { Match } from "aws-cdk-lib/assertions";
import { containerStartScript } from "../src/aws/ecs/container.ts";
import { cfnLint } from "../src/aws/synth.ts";
import { awsDiagramOf } from "../src/cli/commands/diagram/index.ts";
import { costOf } from "../src/cli/commands/cost/index.ts";
import { StayupError } from "../src/shared/errors.ts";
import { type StackDescription, StackValidationError, type Topology } from "../src/stack/index.ts";
import { description, resourcesOf, type Synthesized, synth } from "./aws-helpers.ts";
import { tempDir } from "./helpers.ts";

type Json = Record<string, unknown>;
const IMAGE_TAG = "dev-0123456789abcdef0123456789abcdef01234567";
const COMMAND = "node server.js --mode demo";
const INSTALL = "dnf install -y nodejs20 nodejs20-npm && npm ci --omit=dev";

/** A service folder as a user's project holds it: its code, and dependencies installed for this machine. */
function serviceFolder(): string {
  const dir = tempDir("stayup-your-service-");
  writeFileSync(
    path.join(dir, "server.js"),
    "require('node:http').createServer((q, s) => s.end('ok')).listen(process.env.PORT);\n",
  );
  mkdirSync(path.join(dir, "node_modules", "dep"), { recursive: true });
  writeFileSync(path.join(dir, "node_modules", "dep", "index.js"), "module.exports = 1;\n");
  return dir;
}

const folder = serviceFolder();

function yourService(topology: Topology, change?: (d: StackDescription) => void) {
  return description("dev", (d) => {
    d.topology = topology;
    d.webService.start = { command: COMMAND, workingDirectory: folder };
    d.webService.aws = { installCommand: INSTALL };
    d.targetGroup.healthCheck.path = "/healthz";
    change?.(d);
  });
}

/** The user data of a stack's one launch template, as the template holds it (Fn::Join parts in order). */
function userDataOf(json: Json): string {
  const [template] = resourcesOf(json, "AWS::EC2::LaunchTemplate");
  assert.ok(template, "a launch template");
  return JSON.stringify(
    (template[1].Properties as { LaunchTemplateData: { UserData: unknown } }).LaunchTemplateData.UserData,
  );
}

describe("your service on AWS: load-balanced and single-instance (EC2)", () => {
  const synthesized: Partial<Record<"load-balanced" | "single-instance", Synthesized>> = {};
  const json = (topology: "load-balanced" | "single-instance") => {
    const s = synthesized[topology];
    assert.ok(s, `${topology} synthesized`);
    return s.json[topology === "load-balanced" ? "web" : "single-instance"] as Json;
  };
  before(async () => {
    synthesized["load-balanced"] = synth(await yourService("load-balanced"));
    synthesized["single-instance"] = synth(await yourService("single-instance"));
  });

  it("the service's folder is the S3 asset, without node_modules; the counter's bundle is not", () => {
    const s = synthesized["load-balanced"];
    assert.ok(s);
    const assets = readdirSync(s.outdir).filter((f) => f.startsWith("asset."));
    assert.equal(
      assets.filter((f) => f.endsWith(".mjs")).length,
      0,
      `no counter bundle: ${assets.join(", ")}`,
    );
    const staged = assets.find((f) => existsSync(path.join(s.outdir, f, "server.js")));
    assert.ok(staged, `the folder is staged: ${assets.join(", ")}`);
    assert.equal(existsSync(path.join(s.outdir, staged, "node_modules")), false, "node_modules excluded");
    const hash = staged.slice("asset.".length);
    for (const topology of ["load-balanced", "single-instance"] as const)
      assert.match(userDataOf(json(topology)), new RegExp(`${hash}\\.zip`), `${topology} downloads it`);
  });

  it("user data unpacks the folder and runs the command in it under systemd, not node-20 on the bundle", () => {
    for (const topology of ["load-balanced", "single-instance"] as const) {
      const userData = userDataOf(json(topology));
      assert.match(userData, /unzip -q \/opt\/stayup\/service\.zip -d \/opt\/stayup\/service/);
      assert.ok(userData.includes(`exec ${COMMAND}`), `${topology}: start.sh runs the command`);
      assert.match(userData, /WorkingDirectory=\/opt\/stayup\/service/);
      assert.match(userData, /ExecStart=\/bin\/sh \/opt\/stayup\/start\.sh/);
      assert.match(userData, /systemctl enable --now stayup-web/);
      assert.doesNotMatch(userData, /web-service\.mjs/);
    }
  });

  it("the install command runs in the folder after unpacking and before the service starts", () => {
    const userData = userDataOf(json("load-balanced"));
    const unpack = userData.indexOf("unzip -q");
    const install = userData.indexOf(INSTALL);
    const run = userData.indexOf("(cd /opt/stayup/service && HOME=/root /bin/sh -e /opt/stayup/install.sh)");
    const start = userData.indexOf("systemctl enable --now stayup-web");
    assert.ok(
      unpack > 0 && unpack < install && install < run && run < start,
      `${unpack} ${install} ${run} ${start}`,
    );
  });

  it("every instance gets PORT, HOST, STAYUP_INSTANCE_ID, STAYUP_AZ, STAYUP_REGION and REDIS_URL", () => {
    for (const topology of ["load-balanced", "single-instance"] as const) {
      const userData = userDataOf(json(topology));
      for (const line of [
        "STAYUP_INSTANCE_ID=$INSTANCE_ID",
        "STAYUP_AZ=$AZ",
        "STAYUP_REGION=$REGION",
        "REDIS_URL=$REDIS_URL",
        "HOST=0.0.0.0",
        "PORT=$SERVICE_PORT",
      ])
        assert.ok(userData.includes(line), `${topology}: ${line}`);
    }
  });

  it("load-balanced: REDIS_URL is rediss:// to the primary endpoint, the token read from Secrets Manager at boot", () => {
    const userData = userDataOf(json("load-balanced"));
    assert.ok(
      userData.includes('REDIS_URL=\\"rediss://:$AUTH_TOKEN@$REDIS_HOST:$REDIS_PORT\\"'),
      "the URL joins the token to the endpoint on the instance",
    );
    assert.match(
      userData,
      /aws secretsmanager get-secret-value --region \\"\$REGION\\" --secret-id \\"\$REDIS_AUTH_SECRET_ARN\\"/,
    );
    const parameters = resourcesOf(json("load-balanced"), "AWS::SSM::Parameter").map(([, p]) =>
      JSON.stringify(p.Properties),
    );
    const host = parameters.find((p) => p.includes("/REDIS_HOST"));
    assert.match(host ?? "", /PrimaryEndPointAddress/, "the primary endpoint, which follows a failover");
  });

  it("single-instance: REDIS_URL is the redis:// of the Redis on the instance; the service listens on 80", () => {
    const parameters = resourcesOf(json("single-instance"), "AWS::SSM::Parameter").map(
      ([, p]) => p.Properties as Json,
    );
    assert.ok(
      parameters.some((p) => String(p.Name).endsWith("/REDIS_URL") && p.Value === "redis://127.0.0.1:6379"),
    );
    assert.ok(parameters.some((p) => String(p.Name).endsWith("/SERVICE_PORT") && p.Value === "80"));
    assert.match(userDataOf(json("single-instance")), /AmbientCapabilities=CAP_NET_BIND_SERVICE/);
  });

  it("instances may read exactly the folder's object in the asset bucket", () => {
    for (const topology of ["load-balanced", "single-instance"] as const) {
      const statements = resourcesOf(json(topology), "AWS::IAM::Policy").flatMap(
        ([, p]) => ((p.Properties as Json).PolicyDocument as { Statement: Json[] }).Statement,
      );
      const s3 = statements.filter((s) => JSON.stringify(s.Action).includes("s3:"));
      assert.equal(s3.length, 1, topology);
      assert.equal(s3[0]?.Action, "s3:GetObject");
      assert.match(JSON.stringify(s3[0]?.Resource), /\.zip/, `${topology}: one object, the folder's zip`);
    }
  });

  it("load-balanced: the target group checks the description's health path", () => {
    synthesized["load-balanced"]?.templates.web?.hasResourceProperties(
      "AWS::ElasticLoadBalancingV2::TargetGroup",
      {
        HealthCheckPath: "/healthz",
      },
    );
  });

  it("webService.aws alone (no start) names the folder and command; they override start's", async () => {
    const other = tempDir("stayup-your-service-aws-");
    writeFileSync(path.join(other, "app.py"), "print('hi')\n");
    const d = await description("dev", (x) => {
      x.topology = "single-instance";
      x.webService.aws = { folder: other, command: "python3 app.py" };
    });
    const userData = userDataOf(synth(d).json["single-instance"] as Json);
    assert.ok(userData.includes("exec python3 app.py"));
    assert.doesNotMatch(userData, /install\.sh/, "no install command, no install step");
  });

  it("a folder that does not exist fails the synthesis naming the field", async () => {
    const d = await yourService("load-balanced", (x) => {
      x.webService.aws = { folder: path.join(folder, "missing") };
    });
    assert.throws(
      () => synth(d, false, undefined, { fresh: true }),
      (e: StayupError) =>
        e instanceof StayupError && /webService\.aws\.folder: .*missing is not a folder/.test(e.message),
    );
  });

  it("webService.aws without start and without a command is refused with the field and the fix", async () => {
    await assert.rejects(
      description("dev", (x) => {
        x.webService.aws = { folder: "." };
      }),
      (e: StackValidationError) =>
        e instanceof StackValidationError &&
        e.problems.some(
          (p) => p.path === "webService.aws.command" && /set webService\.start/.test(p.message),
        ),
    );
  });
});

describe("your service on AWS: ecs", () => {
  it("webService.aws.containerUser root (by name or uid) is refused with the field", async () => {
    for (const containerUser of ["root", "0", "0:0", "root:app"]) {
      await assert.rejects(
        yourService("ecs", (x) => {
          x.webService.aws = { containerUser };
        }),
        (e: StackValidationError) =>
          e instanceof StackValidationError &&
          e.problems.some(
            (p) => p.path === "webService.aws.containerUser" && /must not be root/.test(p.message),
          ),
        containerUser,
      );
    }
  });

  let s: Synthesized;
  before(async () => {
    s = synth(await yourService("ecs"), false, IMAGE_TAG);
  });
  const container = (): Json => {
    const [definition] = resourcesOf(s.json.service as Json, "AWS::ECS::TaskDefinition");
    assert.ok(definition);
    const [web] = (definition[1].Properties as { ContainerDefinitions: Json[] }).ContainerDefinitions;
    assert.ok(web);
    return web;
  };

  it("the task runs the image <env>-<sha> built from the project's Dockerfile, its command behind the prelude", () => {
    const web = container();
    assert.match(JSON.stringify(web.Image), new RegExp(`:${IMAGE_TAG}`));
    assert.deepEqual(web.EntryPoint, ["/bin/sh", "-c"]);
    assert.deepEqual(web.Command, [containerStartScript(COMMAND)]);
    assert.match(String((web.Command as string[])[0]), new RegExp(`\\nexec ${COMMAND}$`));
  });

  it("the user's image runs as nobody, not root, and has no node probe; the target group checks the health path", () => {
    const web = container();
    assert.equal(web.User, "65534:65534");
    assert.equal(web.HealthCheck, undefined);
    s.templates.service?.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      HealthCheckPath: "/healthz",
    });
  });

  it("PORT and STAYUP_REGION in the environment; the Redis URL and token as secrets, never in clear", () => {
    const web = container();
    const environment = Object.fromEntries(
      (web.Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]),
    );
    assert.equal(environment.PORT, "8000");
    assert.equal(environment.STAYUP_REGION, "eu-west-3");
    const secrets = Object.fromEntries(
      (web.Secrets as { Name: string; ValueFrom: unknown }[]).map((e) => [
        e.Name,
        JSON.stringify(e.ValueFrom),
      ]),
    );
    assert.match(secrets.STAYUP_REDIS_AUTH_TOKEN ?? "", /AuthToken/);
    assert.match(secrets.STAYUP_REDIS_URL ?? "", /redis-url|RedisUrl/);
    s.templates.service?.hasResourceProperties("AWS::SSM::Parameter", {
      Value: Match.objectLike({
        "Fn::Join": Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp("^rediss://")])]),
      }),
    });
  });

  it("the root file system stays read-only, with /tmp a volume of the task", () => {
    const web = container();
    assert.equal(web.ReadonlyRootFilesystem, true);
    assert.deepEqual(web.MountPoints, [{ ContainerPath: "/tmp", ReadOnly: false, SourceVolume: "tmp" }]);
    s.templates.service?.hasResourceProperties("AWS::ECS::TaskDefinition", {
      Volumes: [{ Name: "tmp", DockerVolumeConfiguration: { Scope: "task", Driver: "local" } }],
    });
  });

  it("the container instances write the metadata file the prelude reads", () => {
    assert.match(
      JSON.stringify(s.json.cluster),
      /ECS_ENABLE_CONTAINER_METADATA=true >> \/etc\/ecs\/ecs\.config/,
    );
  });

  it("the prelude, run by /bin/sh, gives the command STAYUP_AZ, STAYUP_INSTANCE_ID and REDIS_URL, and drops the token", () => {
    const dir = tempDir("stayup-prelude-");
    const metadata = path.join(dir, "ecs-container-metadata.json");
    writeFileSync(
      metadata,
      JSON.stringify(
        {
          Cluster: "stayup-dev",
          TaskARN: "arn:aws:ecs:eu-west-3:123456789012:task/stayup-dev/0f1e2d3c4b5a69788796a5b4c3d2e1f0",
          AvailabilityZone: "eu-west-3b",
          MetadataFileStatus: "READY",
        },
        null,
        4,
      ),
    );
    const out = execFileSync(
      "/bin/sh",
      [
        "-c",
        containerStartScript(
          'printf "%s|%s|%s|%s" "$STAYUP_AZ" "$STAYUP_INSTANCE_ID" "$REDIS_URL" "${STAYUP_REDIS_AUTH_TOKEN:-gone}"',
        ),
      ],
      {
        encoding: "utf8",
        env: {
          PATH: process.env.PATH,
          ECS_CONTAINER_METADATA_FILE: metadata,
          STAYUP_REDIS_AUTH_TOKEN: "t0ken",
          STAYUP_REDIS_URL: "rediss://master.example.cache.amazonaws.com:6379",
        },
      },
    );
    assert.equal(
      out,
      "eu-west-3b|0f1e2d3c4b5a69788796a5b4c3d2e1f0|rediss://:t0ken@master.example.cache.amazonaws.com:6379|gone",
    );
  });
});

describe("your service on AWS: the checks, cost and diagram on every topology", { timeout: 900_000 }, () => {
  const topologies = ["load-balanced", "single-instance", "ecs"] as const;
  /** Each topology's templates, for the one cfn-lint run over all of them. */
  const linted = new Map<Topology, string[]>();
  for (const topology of topologies) {
    it(`${topology}: 0 unacknowledged cdk-nag/cfn-guard/lifecycle findings`, async () => {
      // synth(…, true) throws on any unacknowledged finding of the validation plugins.
      const s = synth(await yourService(topology), true, topology === "ecs" ? IMAGE_TAG : undefined);
      linted.set(
        topology,
        s.order.map((name) => path.join(s.outdir, `${name}.template.json`)),
      );
    });

    it(`${topology}: stayup cost prices it and stayup diagram draws it`, async () => {
      const d = await yourService(topology);
      const estimate = costOf(d, tempDir("stayup-your-service-cost-"));
      assert.ok(estimate.total > 0, `priced: ${estimate.total}`);
      assert.match(awsDiagramOf(d), /\S/);
    });
  }

  // One cfn-lint process over every topology's templates: most of a run is cfn-lint's own start.
  it("every topology above: cfn-lint 0 errors 0 warnings", async () => {
    assert.deepEqual([...linted.keys()], [...topologies], "every topology synthesized with the checks");
    const lint = await cfnLint([...linted.values()].flat());
    // The output names each template's path; the topology each folder holds:
    const folders = [...linted].map(([topology, files]) => `${path.dirname(files[0] ?? "")}: ${topology}`);
    assert.ok(lint.ok, `${lint.output}\n${folders.join("\n")}`);
  });
});
