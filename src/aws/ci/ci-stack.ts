import { Aws, CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import type { EnvironmentName, ResolvedStack } from "../../stack/index.ts";
import { CDK_QUALIFIER } from "../naming.ts";

export const GITHUB_OIDC_ISSUER = "token.actions.githubusercontent.com";
/** The audience configure-aws-credentials asks GitHub's token for. */
export const GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com";

/** What one environment's deploy role may touch: its stacks and its image repositories. */
export interface CiEnvironmentAccess {
  environment: EnvironmentName;
  /**
   * The environment's account when the description names it (environments.<env>.aws.account): the
   * role's ARNs then name it, not the CI stack's own account.
   */
  account?: string;
  /** The environment's stacks (their outputs are readable), in deployment order. */
  stacks: { name: string; region: string }[];
  /** ECR repositories the workflow pushes the image to (the ECS topology). */
  imageRepositories: { name: string; region: string }[];
  /**
   * The ECS topology: what `stayup destroy` changes before CloudFormation deletes it (the service to
   * 0 tasks, the container instances' scale-in protection cleared), with the workflow's credentials.
   */
  ecsTeardown?: { region: string; cluster: string; service: string; group: string };
}

export interface CiStackProps extends StackProps {
  /** The description (any environment: `ci`, `name` and the regions are shared). */
  stack: ResolvedStack;
  environments: CiEnvironmentAccess[];
}

/** The deploy role's name: fixed, so the README can say which ARN to copy into the repository's variables. */
export const deployRoleName = (stack: Pick<ResolvedStack, "name">, environment: EnvironmentName) =>
  `${stack.name}-ci-deploy-${environment}`;

/**
 * The OIDC subject GitHub puts in the token of a job allowed to deploy `environment`: only a job
 * that runs in the GitHub environment of that name (`environment: <env>` in the workflow). Its
 * subject names the environment instead of the branch, so the environment's deployment branches
 * and required reviewers gate the role, and the dev job's token is not the prod role's.
 */
export function githubSubject(ci: NonNullable<ResolvedStack["ci"]>, environment: EnvironmentName): string {
  return `repo:${ci.github.owner}/${ci.github.repository}:environment:${environment}`;
}

/** A CDK bootstrap role: account-wide (it acts on any stack of its account and region). */
export const cdkBootstrapRoleArn = (
  kind: "deploy" | "file-publishing" | "image-publishing" | "lookup",
  account: string,
  region: string,
  partition: string = Aws.PARTITION,
) => `arn:${partition}:iam::${account}:role/cdk-${CDK_QUALIFIER}-${kind}-role-${account}-${region}`;

/**
 * `stayup-ci`: GitHub's OIDC provider and one deploy role per environment of the account it is
 * deployed in, so workflows get short-lived credentials and no access key exists. Deployed once per
 * account by an administrator (`stayup ci bootstrap`), never by the workflows it trusts. A role may
 * only assume the CDK bootstrap roles of its environment's account and regions (CloudFormation
 * does the work with those), read its environment's stack outputs, and push to its environment's
 * image repositories; it is denied assuming any other role. Where environments share one account,
 * the bootstrap roles they share can deploy any stack there: only separate accounts keep dev from prod.
 */
export class CiStack extends Stack {
  readonly provider: iam.IOidcProvider;
  readonly deployRoles: Partial<Record<EnvironmentName, iam.Role>> = {};

  constructor(scope: Construct, id: string, props: CiStackProps) {
    super(scope, id, props);
    const ci = props.stack.ci;
    if (!ci) throw new Error("the CI stack needs the description's ci field");
    // The named provider is one account's: another account's CI stack creates its own.
    const described = props.environments.find((e) => e.account)?.account;
    const existing =
      ci.oidcProviderArn && (!described || ci.oidcProviderArn.split(":")[4] === described)
        ? ci.oidcProviderArn
        : undefined;
    this.provider = existing
      ? iam.OidcProviderNative.fromOidcProviderArn(this, "GitHubOidc", existing)
      : new iam.OidcProviderNative(this, "GitHubOidc", {
          url: `https://${GITHUB_OIDC_ISSUER}`,
          clientIds: [GITHUB_OIDC_AUDIENCE],
        });

    for (const access of props.environments) {
      const env = access.environment;
      const account = access.account ?? Aws.ACCOUNT_ID;
      const role = new iam.Role(this, `DeployRole-${env}`, {
        roleName: deployRoleName(props.stack, env),
        description: `GitHub Actions deploys of ${props.stack.name} ${env} from ${ci.github.owner}/${ci.github.repository}`,
        assumedBy: new iam.WebIdentityPrincipal(this.provider.oidcProviderArn, {
          StringEquals: {
            [`${GITHUB_OIDC_ISSUER}:aud`]: GITHUB_OIDC_AUDIENCE,
            [`${GITHUB_OIDC_ISSUER}:sub`]: githubSubject(ci, env),
          },
        }),
      });
      const regions = [...new Set(access.stacks.map((s) => s.region))];
      // The CDK CLI deploys through these: the deploy role drives CloudFormation, the
      // file-publishing role uploads assets (the web bundle, the Lambdas' code).
      const bootstrapRoles = regions.flatMap((region) =>
        (["deploy", "file-publishing"] as const).map((kind) => cdkBootstrapRoleArn(kind, account, region)),
      );
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: "AssumeCdkBootstrapRoles",
          actions: ["sts:AssumeRole"],
          resources: bootstrapRoles,
        }),
      );
      // An explicit deny wins over any allow attached later (a managed policy, a wider statement):
      // this role assumes its own environment's bootstrap roles or nothing.
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: "AssumeNothingElse",
          effect: iam.Effect.DENY,
          actions: ["sts:AssumeRole"],
          notResources: bootstrapRoles,
        }),
      );
      // A stack's ARN ends in an id CloudFormation picks at creation: `/*` is that id, nothing more.
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: "ReadStackOutputs",
          actions: ["cloudformation:DescribeStacks"],
          resources: access.stacks.map(
            (s) => `arn:${Aws.PARTITION}:cloudformation:${s.region}:${account}:stack/${s.name}/*`,
          ),
        }),
      );
      if (access.imageRepositories.length > 0) {
        role.addToPolicy(
          new iam.PolicyStatement({
            sid: "EcrLogin",
            // GetAuthorizationToken has no resource-level permissions: AWS only accepts `*`.
            actions: ["ecr:GetAuthorizationToken"],
            resources: ["*"],
          }),
        );
        role.addToPolicy(
          new iam.PolicyStatement({
            sid: "PushImage",
            actions: [
              "ecr:BatchCheckLayerAvailability",
              "ecr:InitiateLayerUpload",
              "ecr:UploadLayerPart",
              "ecr:CompleteLayerUpload",
              "ecr:PutImage",
              "ecr:BatchGetImage",
            ],
            resources: access.imageRepositories.map(
              (r) => `arn:${Aws.PARTITION}:ecr:${r.region}:${account}:repository/${r.name}`,
            ),
          }),
        );
      }
      const teardown = access.ecsTeardown;
      if (teardown) {
        const { region, cluster, service, group } = teardown;
        role.addToPolicy(
          new iam.PolicyStatement({
            sid: "EcsTeardown",
            actions: ["ecs:UpdateService", "ecs:DescribeServices"],
            resources: [`arn:${Aws.PARTITION}:ecs:${region}:${account}:service/${cluster}/${service}`],
          }),
        );
        role.addToPolicy(
          new iam.PolicyStatement({
            sid: "ContainerInstancesTeardown",
            actions: ["autoscaling:UpdateAutoScalingGroup", "autoscaling:SetInstanceProtection"],
            // A group's ARN carries an id AWS assigns; the name pins it.
            resources: [
              `arn:${Aws.PARTITION}:autoscaling:${region}:${account}:autoScalingGroup:*:autoScalingGroupName/${group}`,
            ],
          }),
        );
        role.addToPolicy(
          new iam.PolicyStatement({
            sid: "ReadContainerInstances",
            // Describe calls have no resource-level permissions: AWS accepts only `*`.
            actions: ["autoscaling:DescribeAutoScalingGroups"],
            resources: ["*"],
          }),
        );
      }
      this.deployRoles[env] = role;
      new CfnOutput(this, `DeployRoleArn${env[0]?.toUpperCase()}${env.slice(1)}`, {
        description: `Set as the repository variable AWS_DEPLOY_ROLE_${env.toUpperCase()}`,
        value: role.roleArn,
      });
    }
  }
}
