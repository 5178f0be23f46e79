import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as ecr from "aws-cdk-lib/aws-ecr";
import type { Construct } from "constructs";
import type { ResolvedStack } from "../../stack/index.ts";
import { resourcePrefix } from "../naming.ts";

/** The image tag prefix of an environment: CI pushes `<env>-<git sha>`. */
export const imageTagPrefix = (stack: ResolvedStack) => `${stack.environment}-`;

/**
 * The prefix of the second tag CI gives an image once a deploy that runs it has succeeded
 * (`deployed-<env>-<git sha>`): the repository never expires the last `deployedImagesKept` of them,
 * however many later pushes fail to deploy.
 */
export const deployedTagPrefix = (stack: ResolvedStack) => `deployed-${stack.environment}-`;

/** Images that ran in a successful deploy kept beyond the count rule: the running one, and two to roll back to. */
export const deployedImagesKept = 3;

/** The environment's image repository's name. */
export const repositoryName = (stack: ResolvedStack) => `${resourcePrefix(stack)}-web`;

/**
 * Seed 004's ECR repository, one per environment: tags are immutable (a `<env>-<sha>` tag always
 * names the image it was pushed as), images are scanned on push, untagged images expire after
 * `ecs.repository.untaggedExpiryDays`, and only the last `taggedImagesKept` `<env>-` images stay.
 * Emptied and deleted with its stack in every environment: its name is fixed (CI pushes there and
 * its role is limited to it), so a kept repository would fail the next create of the stack, and
 * every image is rebuilt from git by the deploy workflow. prod's stack has termination protection.
 */
export class RepositoryStack extends Stack {
  readonly repository: ecr.Repository;
  constructor(scope: Construct, id: string, props: StackProps & { stack: ResolvedStack }) {
    super(scope, id, props);
    const { stack } = props;
    this.repository = new ecr.Repository(this, "Repository", {
      repositoryName: repositoryName(stack),
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      imageScanOnPush: true,
      removalPolicy: RemovalPolicy.DESTROY,
      emptyOnDelete: true,
      lifecycleRules: [
        {
          rulePriority: 1,
          description: "untagged images expire",
          tagStatus: ecr.TagStatus.UNTAGGED,
          maxImageAge: Duration.days(stack.ecs.repository.untaggedExpiryDays),
        },
        // ECR: an image that matches a rule's tag selection cannot be expired by a rule of lower
        // priority. So an image once deployed (it carries deployed-<env>-…) is expired by this rule
        // only, after `deployedImagesKept` newer deployed ones, never by the count of pushes below:
        // failed deploys push images too, and must not expire the one running.
        {
          rulePriority: 2,
          description: `keep the last ${deployedImagesKept} images that ran in a successful deploy`,
          tagStatus: ecr.TagStatus.TAGGED,
          tagPrefixList: [deployedTagPrefix(stack)],
          maxImageCount: deployedImagesKept,
        },
        {
          rulePriority: 3,
          description: `keep the last ${stack.ecs.taggedImagesKept} ${imageTagPrefix(stack)} images`,
          tagStatus: ecr.TagStatus.TAGGED,
          tagPrefixList: [imageTagPrefix(stack)],
          maxImageCount: stack.ecs.taggedImagesKept,
        },
      ],
    });
    new CfnOutput(this, "RepositoryUri", {
      value: this.repository.repositoryUri,
      description: `Push images here as ${imageTagPrefix(stack)}<git sha>`,
    });
  }
}
