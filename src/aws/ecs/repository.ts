import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as ecr from "aws-cdk-lib/aws-ecr";
import type { Construct } from "constructs";
import type { ResolvedStack } from "../../stack/index.ts";
import { resourcePrefix } from "../naming.ts";

/** The image tag prefix of an environment: CI pushes `<env>-<git sha>`. */
export const imageTagPrefix = (stack: ResolvedStack) => `${stack.environment}-`;

/** The environment's image repository's name. */
export const repositoryName = (stack: ResolvedStack) => `${resourcePrefix(stack)}-web`;

/**
 * Seed 004's ECR repository, one per environment: tags are immutable (a `<env>-<sha>` tag always
 * names the image it was pushed as), images are scanned on push, untagged images expire after
 * `ecs.repository.untaggedExpiryDays`, and only the last `taggedImagesKept` `<env>-` images stay.
 * Emptied and deleted with the stack in dev; kept in prod.
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
      removalPolicy: stack.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      emptyOnDelete: !stack.deletionProtection,
      lifecycleRules: [
        {
          rulePriority: 1,
          description: "untagged images expire",
          tagStatus: ecr.TagStatus.UNTAGGED,
          maxImageAge: Duration.days(stack.ecs.repository.untaggedExpiryDays),
        },
        {
          rulePriority: 2,
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
