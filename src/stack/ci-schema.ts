import { z } from "zod";

/**
 * `ci`: who may deploy from GitHub Actions. Read by the `stayup-ci` stack (the GitHub OIDC provider
 * and one deploy role per environment) and nothing else; optional, since a user who deploys from a
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
          /** Only workflows running on this branch may assume an unprotected environment's role. */
          branch: z
            .string()
            .regex(
              /^[A-Za-z0-9._/-]{1,200}$/,
              "must be a branch name such as main (no wildcards: the trust names one branch)",
            ),
          /**
           * Environments whose jobs run in the GitHub environment of the same name (required
           * reviewers, deployment branches set there): their role trusts that GitHub environment.
           * Default prod, as deploy.yml and destroy.yml run it.
           */
          protectedEnvironments: z
            .array(z.enum(environments, { message: `must be one of ${environments.join(", ")}` }))
            .default(["prod"]),
        })
        .strict(),
      /**
       * An account has one GitHub OIDC provider: when it already exists, its ARN here makes the
       * stack use it instead of creating a second (which IAM refuses).
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
