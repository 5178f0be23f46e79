import { z } from "zod";

/**
 * `ci`: who may deploy from GitHub Actions. Read by the `stayup-ci` stack (the GitHub OIDC provider
 * and one deploy role per environment, one stack per account) and nothing else; optional, since a user who deploys from a
 * laptop needs none of it.
 */
export const ciSchema = (environments: readonly [string, ...string[]]) =>
  z
    .object({
      github: z
        .object({
          /** The user or organization that owns the repository (github.com/<owner>/<repository>). */
          owner: z
            .string()
            .regex(
              /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/,
              "must be a GitHub user or organization name (letters, digits, dashes)",
            ),
          repository: z
            .string()
            .regex(/^[A-Za-z0-9._-]{1,100}$/, "must be a repository name (letters, digits, . _ -)"),
          /**
           * The branch deploys come from: `stayup ci bootstrap` says to limit each GitHub
           * environment's deployment branches to it (the roles trust the GitHub environment, whose
           * rules GitHub enforces before it issues the job's token).
           */
          branch: z
            .string()
            .regex(
              /^[A-Za-z0-9._/-]{1,200}$/,
              "must be a branch name such as main (no wildcards: the trust names one branch)",
            ),
          /**
           * Environments whose GitHub environment has required reviewers (`stayup ci bootstrap`
           * says to set them; deploy.yml's prod job waits for them). Every environment's role trusts
           * only jobs in the GitHub environment of its name, protected or not. Default prod.
           */
          protectedEnvironments: z
            .array(z.enum(environments, { message: `must be one of ${environments.join(", ")}` }))
            .default(["prod"]),
        })
        .strict(),
      /**
       * An account has one GitHub OIDC provider: when it already exists, its ARN here makes the
       * stack use it instead of creating a second (which IAM refuses). With an account per
       * environment, it serves the account its ARN names; the others' CI stacks create theirs.
       */
      oidcProviderArn: z
        .string()
        .regex(
          /^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/,
          "must be the ARN of the account's token.actions.githubusercontent.com OIDC provider",
        )
        .optional(),
    })
    .strict();
