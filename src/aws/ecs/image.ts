import { execFileSync } from "node:child_process";
import { StayupError } from "../../shared/errors.ts";
import type { ResolvedStack } from "../../stack/index.ts";
import { imageTagPrefix } from "./repository.ts";

/**
 * The image tag the service runs: `<env>-<git sha>`, the tag CI pushes (seed 004). Given as the CDK
 * context value `imageTag` (`stayup deploy --image-tag`, `cdk deploy -c imageTag=…`); otherwise the
 * commit checked out here, read from git, so synthesis needs neither Docker nor the registry.
 */
export function resolveImageTag(stack: ResolvedStack, given?: string, cwd = process.cwd()): string {
  const prefix = imageTagPrefix(stack);
  let tag = given;
  if (!tag) {
    let sha: string;
    try {
      sha = execFileSync("git", ["rev-parse", "HEAD"], { cwd, encoding: "utf8", stdio: "pipe" }).trim();
    } catch {
      throw new StayupError(
        "the ecs topology needs an image tag and this is not a git checkout",
        `pass one: --image-tag ${prefix}<git sha> (or cdk -c imageTag=${prefix}<git sha>)`,
      );
    }
    tag = `${prefix}${sha}`;
  }
  if (!new RegExp(`^${prefix}[0-9a-f]{7,40}$`).test(tag)) {
    throw new StayupError(
      `image tag "${tag}" is not ${prefix}<git sha>`,
      `tag images ${prefix}<7 to 40 hex digits of the commit>: the repository's lifecycle rules keep the last ${stack.ecs.taggedImagesKept} of them`,
    );
  }
  return tag;
}
