import type { ResolvedStack } from "../stack/index.ts";

/**
 * Every named resource carries the stack name and the environment, so dev and prod (or two
 * users) never collide (the seed's fixed IAM names did).
 */
export const resourcePrefix = (stack: ResolvedStack) => `${stack.name}-${stack.environment}`;

export const stackIds = (stack: ResolvedStack) => {
  const prefix = resourcePrefix(stack);
  return {
    network: `${prefix}-network`,
    access: `${prefix}-access`,
    database: `${prefix}-database`,
    web: `${prefix}-web`,
    singleInstance: `${prefix}-single-instance`,
    secondaryNetwork: `${prefix}-secondary-network`,
    secondaryDatabase: `${prefix}-secondary-database`,
    secondaryWeb: `${prefix}-secondary-web`,
  };
};
