import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Arn, ArnFormat, CfnOutput, Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cloudwatchActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as lambdaDestinations from "aws-cdk-lib/aws-lambda-destinations";
import { LogLevel, NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as route53 from "aws-cdk-lib/aws-route53";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { StayupError } from "../../shared/errors.ts";
import { derive, type ResolvedStack } from "../../stack/index.ts";
import {
  nameUnlessRetained,
  regionalName,
  removalPolicyOf,
  resourcePrefix,
  webGroupName,
} from "../naming.ts";

/** "primary" → "Primary", for construct ids. */
const title = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);

const handlersFile = fileURLToPath(new URL("../failover/handlers.ts", import.meta.url));
/**
 * The lock file the Lambdas' bundling reads: this repository's, or, with stayup installed as a
 * dependency (npm never packs package-lock.json), the project's that holds it.
 */
function findLockFile(): string {
  for (let dir = path.dirname(handlersFile); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "package-lock.json");
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) {
      throw new StayupError(
        "no package-lock.json above stayup's sources: the failover Lambdas cannot be bundled",
        "install stayup with npm (npm install --save-dev stayup) in the project",
      );
    }
  }
}

export interface DnsFailoverProps {
  stack: ResolvedStack;
}

/**
 * Seed 002's failover, built so that it works: Route 53 failover records for `dns.name`, a health
 * check on the primary region's load balancer (through the regional names the web stacks publish;
 * none on the secondary's unless asked, see derive().failoverRecords),
 * and two CloudWatch alarms on the primary's health check, each with its own Lambda: one that
 * starts the secondary group, one that returns it to standby. The alarms must live in us-east-1,
 * where Route 53 publishes its health-check metrics; referring to the other stacks only by name
 * keeps this stack free of cross-region references.
 */
export class DnsFailover extends Construct {
  /** The secondary's only with dns.healthCheck.checkedRecords "both". */
  readonly healthChecks: { primary: route53.CfnHealthCheck; secondary?: route53.CfnHealthCheck };
  readonly records: { primary: route53.CfnRecordSet; secondary: route53.CfnRecordSet };
  /** Fires when the primary fails its health check; runs `failover`. */
  readonly primaryUnhealthy: cloudwatch.Alarm;
  /** Fires when the primary passes again; runs `failback`. (Seed 002's could never fire.) */
  readonly primaryHealthy: cloudwatch.Alarm;
  readonly functions: { failover: NodejsFunction; failback: NodejsFunction };
  readonly topic: sns.Topic;

  constructor(scope: Construct, id: string, props: DnsFailoverProps) {
    super(scope, id);
    const { stack } = props;
    const { dns, regions } = stack;
    const zone = stack.aws.hostedZone;
    const secondary = regions.secondary;
    if (!dns || !zone || !secondary) {
      throw new Error("DNS failover needs dns, aws.hostedZone and regions.secondary");
    }
    const prefix = resourcePrefix(stack);
    const secure = stack.aws.https;
    const derived = derive(stack);

    const healthCheck = (role: "primary" | "secondary") =>
      new route53.CfnHealthCheck(this, `${title(role)}HealthCheck`, {
        healthCheckConfig: {
          type: secure ? "HTTPS" : "HTTP",
          fullyQualifiedDomainName: regionalName(stack, role),
          port: secure ? 443 : 80,
          resourcePath: derived.regionHealthCheckPath,
          requestInterval: dns.healthCheck.aws.intervalSeconds,
          failureThreshold: dns.healthCheck.failureThreshold,
        },
        healthCheckTags: [{ key: "Name", value: `${prefix}-${role}` }],
      });
    // The records and their checks as derived (the local DNS answers from the same pair): the
    // SECONDARY carries a check only with dns.healthCheck.checkedRecords "both", since Route 53
    // answers the PRIMARY whenever a checked SECONDARY is unhealthy, and a pilot light or a warm
    // standby short of capacity must get the traffic once the primary fails.
    const [primaryRecord, secondaryRecord] = derived.failoverRecords;
    this.healthChecks = {
      primary: healthCheck("primary"),
      secondary: secondaryRecord?.healthCheck ? healthCheck("secondary") : undefined,
    };

    // A health check's Ref is its id (and moto, unlike AWS, has no GetAtt HealthCheckId).
    // CNAMEs rather than aliases, so that clients re-resolve after dns.ttlSeconds, not the
    // load balancer alias's fixed 60 s.
    const failoverRecord = (role: "primary" | "secondary") =>
      new route53.CfnRecordSet(this, `${title(role)}Record`, {
        hostedZoneId: zone.id,
        name: `${dns.name}.`,
        type: "CNAME",
        ttl: String(dns.ttlSeconds),
        setIdentifier: `${prefix}-${role}`,
        failover: role.toUpperCase(),
        healthCheckId: this.healthChecks[role]?.ref,
        resourceRecords: [regionalName(stack, role) as string],
      });
    if (!primaryRecord?.healthCheck) throw new Error("the PRIMARY failover record is always checked");
    this.records = { primary: failoverRecord("primary"), secondary: failoverRecord("secondary") };

    this.topic = new sns.Topic(this, "Notifications", {
      topicName: derived.notificationTopic.name,
      displayName: `stayup ${stack.environment}: failover and failback`,
      // Only the Lambdas publish here, and the AWS-managed key admits any principal of the account.
      masterKey: kms.Alias.fromAliasName(this, "SnsKey", "alias/aws/sns"),
      enforceSSL: true,
    });
    for (const email of stack.notifications.emails) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }
    // The same webhooks the local runtime posts to; SNS sends them the same message shape.
    for (const url of stack.notifications.webhooks) {
      this.topic.addSubscription(
        new subscriptions.UrlSubscription(url, {
          protocol: url.startsWith("https:") ? sns.SubscriptionProtocol.HTTPS : sns.SubscriptionProtocol.HTTP,
        }),
      );
    }

    const secondaryGroupArn = Arn.format(
      {
        service: "autoscaling",
        region: secondary.name,
        resource: "autoScalingGroup",
        // The group's id is assigned at creation; region, account and name pin it.
        resourceName: `*:autoScalingGroupName/${webGroupName(stack)}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      },
      Stack.of(this),
    );
    // What each action sets, under the environment names the handlers read (ACTIVE_*, STANDBY_*).
    const sizes = {
      failover: { env: "ACTIVE", ...derived.failoverCapacity },
      failback: {
        env: "STANDBY",
        min: derived.secondaryStandby.min,
        desired: derived.secondaryStandby.desired,
      },
    };
    const makeFunction = (action: "failover" | "failback") => {
      const name = title(action);
      const logGroup = new logs.LogGroup(this, `${name}Logs`, {
        logGroupName: nameUnlessRetained(stack, `/stayup/${prefix}/${action}`),
        retention: stack.aws.logRetentionDays as logs.RetentionDays,
        removalPolicy: removalPolicyOf(stack),
      });
      const role = new iam.Role(this, `${name}Role`, {
        assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
        description: `stayup ${action}: resizes ${webGroupName(stack)} in ${secondary.name} and notifies`,
      });
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ["autoscaling:UpdateAutoScalingGroup"],
          resources: [secondaryGroupArn],
        }),
      );
      // The handlers read the group before resizing it; Describe* has no resource-level permissions.
      role.addToPolicy(
        new iam.PolicyStatement({ actions: ["autoscaling:DescribeAutoScalingGroups"], resources: ["*"] }),
      );
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
          resources: [logGroup.logGroupArn],
        }),
      );
      this.topic.grantPublish(role);
      const size = sizes[action];
      const fn = new NodejsFunction(this, `${name}Function`, {
        functionName: `${prefix}-${action}`,
        description: `stayup: sets ${webGroupName(stack)} in ${secondary.name} to min ${size.min}, desired ${size.desired}`,
        entry: handlersFile,
        handler: `${action}Handler`,
        depsLockFilePath: findLockFile(),
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 256,
        timeout: Duration.seconds(30),
        // No reserved concurrency: a new account's unreserved concurrency is at its minimum, and
        // reserving any of it fails the create (docs/aws-lifecycle.md). Two runs set the same sizes.
        role,
        logGroup,
        // The alarm invokes asynchronously: Lambda retries a failed run twice, then publishes the
        // event and its error to the failover topic, so a failover that never happened is seen.
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
        onFailure: new lambdaDestinations.SnsDestination(this.topic),
        environment: {
          SECONDARY_REGION: secondary.name,
          SECONDARY_GROUP_NAME: webGroupName(stack),
          [`${size.env}_MIN_SIZE`]: String(size.min),
          [`${size.env}_DESIRED_CAPACITY`]: String(size.desired),
          TOPIC_ARN: this.topic.topicArn,
        },
        bundling: { minify: true, sourceMap: false, target: "node24", logLevel: LogLevel.ERROR },
      });
      // CDK makes the function depend on its role and the role's policy; the GetAtt on the role
      // already orders the first (cfn-lint W3005), so depend on the policy alone.
      const policy = role.node.findChild("DefaultPolicy").node.defaultChild as iam.CfnPolicy;
      (fn.node.defaultChild as lambda.CfnFunction).addOverride("DependsOn", [
        Stack.of(this).getLogicalId(policy),
      ]);
      return fn;
    };
    this.functions = { failover: makeFunction("failover"), failback: makeFunction("failback") };

    // Route 53 publishes HealthCheckStatus (1 healthy, 0 not) once a minute.
    const status = new cloudwatch.Metric({
      namespace: "AWS/Route53",
      metricName: "HealthCheckStatus",
      dimensionsMap: { HealthCheckId: this.healthChecks.primary.ref },
      statistic: cloudwatch.Stats.MINIMUM,
      period: Duration.minutes(1),
    });
    this.primaryUnhealthy = new cloudwatch.Alarm(this, "PrimaryUnhealthy", {
      alarmName: `${prefix}-primary-unhealthy`,
      alarmDescription: `${regionalName(stack, "primary")} fails its Route 53 health check: start the secondary`,
      metric: status,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      threshold: 1,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.primaryHealthy = new cloudwatch.Alarm(this, "PrimaryHealthy", {
      alarmName: `${prefix}-primary-healthy`,
      alarmDescription: `${regionalName(stack, "primary")} passes its Route 53 health check: return the secondary to standby`,
      metric: status,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      threshold: 1,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    this.primaryUnhealthy.addAlarmAction(new cloudwatchActions.LambdaAction(this.functions.failover));
    this.primaryHealthy.addAlarmAction(new cloudwatchActions.LambdaAction(this.functions.failback));

    new CfnOutput(this, "FailoverName", {
      value: dns.name,
      description: "The name clients use; Route 53 answers the primary or the secondary",
    });
    new CfnOutput(this, "PrimaryHealthCheckId", { value: this.healthChecks.primary.ref });
    new CfnOutput(this, "NotificationTopicArn", { value: this.topic.topicArn });
  }
}

export class DnsFailoverStack extends Stack {
  readonly failover: DnsFailover;
  constructor(scope: Construct, id: string, props: StackProps & DnsFailoverProps) {
    super(scope, id, props);
    this.failover = new DnsFailover(this, "DnsFailover", props);
  }
}
