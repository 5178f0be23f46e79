import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3assets from "aws-cdk-lib/aws-s3-assets";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import path from "node:path";
import { Stack, Stage } from "aws-cdk-lib";
import { Construct } from "constructs";
import { StayupError } from "../../shared/errors.ts";
import type { ResolvedStack } from "../../stack/index.ts";
import { AMAZON_LINUX_2023_PARAMETER, pinnedMachineImage } from "../machine-image.ts";
import { nameUnlessRetained, removalPolicyOf } from "../naming.ts";
import { grantSessionManager } from "../session-manager.ts";
import { redisReplicasToAcknowledge, redisWriteHoldMs } from "../../stack/redis-durability.ts";
import { type Ec2ServiceArtifact, ec2ServiceArtifact } from "../../stack/service-artifact.ts";
import { bundleWebServiceSync, webServiceBundleName } from "../../web-service/bundle.ts";
import { serviceVersion } from "../../web-service/version.ts";
import { InstanceSettings } from "./instance-settings.ts";

export type RedisConnection =
  /** ElastiCache with TLS and an AUTH token kept in Secrets Manager. */
  | { kind: "elasticache"; endpoint: string; port: string; authToken: secretsmanager.ISecret }
  /** A redis-server on the instance itself (the single-instance topology). */
  | { kind: "on-instance" };

export interface WebServiceLaunchTemplateProps {
  stack: ResolvedStack;
  name: string;
  securityGroup: ec2.ISecurityGroup;
  redis: RedisConnection;
  /** The launch template's instance type (a group may override it with alternatives). */
  instanceType: string;
  /** Where the web service bundle is written before it becomes an asset. */
  bundleDir: string;
  /** Port the service listens on (the description's web port behind an ALB; 80 when it is public). */
  port: number;
  /** In a public subnet with no NAT, the instance needs a public address to reach AWS APIs at all. */
  associatePublicIpAddress?: boolean;
  /** Shell run before the service starts (Elastic IP association, data volume...), given the role. */
  bootCommands?: (role: iam.Role) => string[];
}

/** Where the user's folder is unpacked on the instance (the service's working directory). */
export const serviceFolderPath = "/opt/stayup/service";

/**
 * What every web instance boots from: Amazon Linux 2023, IMDSv2 only, an encrypted root volume,
 * a role with only what the instance does, and user data that installs the service (the very
 * bundle the local runtime runs, or the user's folder and command: webService.aws) and starts it
 * under systemd with its logs in CloudWatch.
 */
export class WebServiceLaunchTemplate extends Construct {
  readonly launchTemplate: ec2.LaunchTemplate;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly userData: ec2.UserData;
  /** The instance's settings in Parameter Store. */
  readonly settings: InstanceSettings;
  /** What every instance of this template names in `GET /`: bundle and settings hashed. */
  readonly version: string;

  constructor(scope: Construct, id: string, props: WebServiceLaunchTemplateProps) {
    super(scope, id);
    const { stack } = props;
    this.logGroup = new logs.LogGroup(this, "Logs", {
      logGroupName: nameUnlessRetained(stack, `/stayup/${props.name}`),
      retention: stack.aws.logRetentionDays as logs.RetentionDays,
      removalPolicy: removalPolicyOf(stack),
    });
    this.role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("ec2.amazonaws.com"),
      description: `${props.name} instances: Session Manager, their log group, the bundle and the Redis token`,
    });
    grantSessionManager(this.role);
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    const artifact = ec2ServiceArtifact(stack.webService);
    const userData = ec2.UserData.forLinux();
    this.userData = userData;
    const service = installService(this, artifact, userData, props.bundleDir);
    // Exactly the one object, not the whole asset bucket.
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["s3:GetObject"],
        resources: [service.asset.bucket.arnForObjects(service.asset.s3ObjectKey)],
      }),
    );
    let redisUrlCommand: string;
    const packages = service.packages;
    const settings: Record<string, string> = { SERVICE_PORT: String(props.port) };
    if (props.redis.kind === "elasticache") {
      props.redis.authToken.grantRead(this.role);
      Object.assign(settings, {
        REDIS_HOST: props.redis.endpoint,
        REDIS_PORT: props.redis.port,
        REDIS_AUTH_SECRET_ARN: props.redis.authToken.secretArn,
      });
      redisUrlCommand = [
        'AUTH_TOKEN=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id "$REDIS_AUTH_SECRET_ARN" --query SecretString --output text)',
        'REDIS_URL="rediss://:$AUTH_TOKEN@$REDIS_HOST:$REDIS_PORT"',
      ].join("\n");
    } else {
      packages.push("redis6");
      settings.REDIS_URL = "redis://127.0.0.1:6379";
      redisUrlCommand = "";
    }
    // Settings live in Parameter Store, read at boot; the version (bundle + settings) is passed in
    // the user data, so a change of either changes the launch template and rolls the instances.
    this.settings = new InstanceSettings(this, "Settings", { name: props.name, role: this.role, settings });
    this.version = service.version(Stack.of(this).resolve(settings) as Record<string, unknown>);
    userData.addCommands(
      "set -euo pipefail",
      "exec > >(tee -a /var/log/stayup-boot.log | logger -t stayup-boot) 2>&1",
      `dnf install -y ${packages.join(" ")}`,
      // IMDSv2 only: a session token first, then the instance's own facts (no hard-coded region).
      'IMDS_TOKEN=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
      'imds() { curl -sf -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "http://169.254.169.254/latest/meta-data/$1"; }',
      "INSTANCE_ID=$(imds instance-id)",
      "AZ=$(imds placement/availability-zone)",
      "REGION=$(imds placement/region)",
      ...this.settings.bootCommands,
      ...(props.bootCommands?.(this.role) ?? []),
      ...(redisUrlCommand ? [redisUrlCommand] : []),
      ...service.bootCommands,
      "install -d -m 0755 /etc/stayup /var/log/stayup",
      "umask 077",
      "cat > /etc/stayup/web.env <<EOF",
      "STAYUP_INSTANCE_ID=$INSTANCE_ID",
      "STAYUP_AZ=$AZ",
      "STAYUP_REGION=$REGION",
      "STAYUP_REDIS_URL=$REDIS_URL",
      // What any service reads (issue 23): the same URL, TLS and token included, to the primary endpoint.
      "REDIS_URL=$REDIS_URL",
      // The same acknowledgement rule as locally: a count is answered once a replica holds it.
      `STAYUP_REDIS_WAIT_REPLICAS=${props.redis.kind === "elasticache" ? redisReplicasToAcknowledge(stack) : 0}`,
      // Held through an ElastiCache failover, short of the ALB's idle timeout (redisWriteHoldMs).
      `STAYUP_REDIS_WRITE_HOLD_MS=${props.redis.kind === "elasticache" ? redisWriteHoldMs(stack, "aws") : 0}`,
      `STAYUP_VERSION=${this.version}`,
      "HOST=0.0.0.0",
      "PORT=$SERVICE_PORT",
      "EOF",
      "umask 022",
      "cat > /etc/systemd/system/stayup-web.service <<'EOF'",
      "[Unit]",
      "Description=stayup web service",
      "After=network-online.target",
      "Wants=network-online.target",
      "[Service]",
      "EnvironmentFile=/etc/stayup/web.env",
      ...service.unitLines,
      "DynamicUser=yes",
      ...(props.port < 1024 ? ["AmbientCapabilities=CAP_NET_BIND_SERVICE"] : []),
      "Restart=always",
      "RestartSec=1",
      // SIGTERM drains in-flight requests; systemd waits for that before killing.
      "KillSignal=SIGTERM",
      "TimeoutStopSec=30",
      "StandardOutput=append:/var/log/stayup/web.log",
      "StandardError=append:/var/log/stayup/web.log",
      "[Install]",
      "WantedBy=multi-user.target",
      "EOF",
      "cat > /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json <<EOF",
      JSON.stringify({
        logs: {
          logs_collected: {
            files: {
              collect_list: [
                {
                  file_path: "/var/log/stayup/web.log",
                  log_group_name: this.logGroup.logGroupName,
                  log_stream_name: "{instance_id}/web",
                },
                {
                  file_path: "/var/log/stayup-boot.log",
                  log_group_name: this.logGroup.logGroupName,
                  log_stream_name: "{instance_id}/boot",
                },
              ],
            },
          },
        },
      }),
      "EOF",
      "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json",
      "systemctl daemon-reload",
      "systemctl enable --now stayup-web",
    );

    this.launchTemplate = new ec2.LaunchTemplate(this, "LaunchTemplate", {
      launchTemplateName: props.name,
      machineImage: pinnedMachineImage(this, AMAZON_LINUX_2023_PARAMETER),
      instanceType: new ec2.InstanceType(props.instanceType),
      securityGroup: props.securityGroup,
      role: this.role,
      userData,
      requireImdsv2: true,
      httpPutResponseHopLimit: 1,
      blockDevices: [
        {
          deviceName: "/dev/xvda",
          volume: ec2.BlockDeviceVolume.ebs(8, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
        },
      ],
      detailedMonitoring: true,
      associatePublicIpAddress: props.associatePublicIpAddress,
    });
  }
}

interface InstalledService {
  asset: s3assets.Asset;
  /** Amazon Linux packages the boot installs. */
  packages: string[];
  /** Shell after the settings and the Redis URL are known: download, unpack, install. */
  bootCommands: string[];
  /** The systemd unit's lines that start it. */
  unitLines: string[];
  /** The version instances name (STAYUP_VERSION): the service's content and the settings hashed. */
  version: (settings: Record<string, unknown>) => string;
}

/** A file written by the user data from `text` as it is (a quoted here-document: no expansion). */
function writeFile(file: string, text: string): string[] {
  return [`cat > ${file} <<'STAYUP_EOF'`, text, "STAYUP_EOF"];
}

/** The counter's bundle, or the user's folder and command (webService.aws), as an S3 asset. */
function installService(
  scope: Construct,
  artifact: Ec2ServiceArtifact,
  userData: ec2.UserData,
  bundleDir: string,
): InstalledService {
  if (artifact.kind === "counter") {
    const bundleFile = bundleWebServiceSync(bundleDir);
    const asset = new s3assets.Asset(scope, "WebServiceBundle", { path: bundleFile });
    const bundlePath = userData.addS3DownloadCommand({
      bucket: asset.bucket,
      bucketKey: asset.s3ObjectKey,
      localFile: `/opt/stayup/${webServiceBundleName}`,
    });
    return {
      asset,
      packages: ["nodejs20", "amazon-cloudwatch-agent"],
      bootCommands: [],
      unitLines: [`ExecStart=/usr/bin/node-20 ${bundlePath}`],
      version: (settings) => serviceVersion(bundleFile, settings),
    };
  }
  let isFolder = false;
  try {
    isFolder = statSync(artifact.folder).isDirectory();
  } catch {
    isFolder = false;
  }
  if (!isFolder) {
    throw new StayupError(
      `webService.aws.folder: ${artifact.folder} is not a folder`,
      "set webService.aws.folder (or webService.start.workingDirectory) to the folder of your service",
    );
  }
  // A directory asset is zipped; CDK fingerprints its content, so a change is a new object.
  const asset = new s3assets.Asset(scope, "ServiceFolder", {
    path: artifact.folder,
    exclude: [...artifact.exclude, ...synthesisOutputInside(scope, artifact.folder)],
  });
  const zip = userData.addS3DownloadCommand({
    bucket: asset.bucket,
    bucketKey: asset.s3ObjectKey,
    localFile: "/opt/stayup/service.zip",
  });
  const bootCommands = [
    `rm -rf ${serviceFolderPath} && install -d -m 0755 ${serviceFolderPath}`,
    `unzip -q ${zip} -d ${serviceFolderPath}`,
    // Readable by the service's dynamic user, writable by root only.
    `chmod -R u+rwX,go+rX,go-w ${serviceFolderPath}`,
    ...writeFile("/opt/stayup/start.sh", `exec ${artifact.command}`),
  ];
  if (artifact.installCommand) {
    // As root, in the folder, before the service starts (cloud-init sets no HOME; npm needs one); a failure fails the boot (set -e), and the
    // instance never passes its health check.
    bootCommands.push(
      ...writeFile("/opt/stayup/install.sh", artifact.installCommand),
      `(cd ${serviceFolderPath} && HOME=/root /bin/sh -e /opt/stayup/install.sh)`,
    );
  }
  return {
    asset,
    packages: ["amazon-cloudwatch-agent", "unzip"],
    bootCommands,
    unitLines: [
      `WorkingDirectory=${serviceFolderPath}`,
      // The dynamic user has no home; tools that write one (npm's logs) get the private /tmp.
      "Environment=HOME=/tmp",
      "ExecStart=/bin/sh /opt/stayup/start.sh",
    ],
    version: (settings) => {
      const hash = createHash("sha256");
      hash.update(JSON.stringify([asset.assetHash, artifact.command, artifact.installCommand ?? ""]));
      const sorted = Object.fromEntries(Object.entries(settings).sort(([a], [b]) => a.localeCompare(b)));
      hash.update(JSON.stringify(sorted));
      return `v-${hash.digest("hex").slice(0, 12)}`;
    },
  };
}

/**
 * The synthesis's own output folder when it lies inside the service's folder (`stayup synth --out`
 * anywhere in the project): never part of the asset, or each synthesis would copy the last one's
 * assets into itself, deeper every time.
 */
function synthesisOutputInside(scope: Construct, folder: string): string[] {
  const outdir = Stage.of(scope)?.outdir;
  if (!outdir) return [];
  const relative = path.relative(folder, path.resolve(outdir));
  if (relative === "" || relative.startsWith("..") || path.isAbsolute(relative)) return [];
  return [relative.split(path.sep).join("/")];
}
