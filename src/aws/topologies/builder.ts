import type { App, Environment } from "aws-cdk-lib";
import type { ResolvedStack } from "../../stack/index.ts";
import type { StayupStacks } from "../stacks.ts";
import type { stackIds } from "../naming.ts";
import type { NetworkStack } from "../network/network.ts";

/** What every topology's builder gets: the app, the description and the primary region's network. */
export interface AwsTopologyContext {
  app: App;
  stack: ResolvedStack;
  bundleDir: string;
  ids: ReturnType<typeof stackIds>;
  /** Properties every stack of the primary region takes. */
  common: { env: Environment; stack: ResolvedStack; terminationProtection: boolean };
  networkStack: NetworkStack;
  /** Per-run options: the ecs topology's image tag (`<env>-<git sha>`). */
  options: { imageTag?: string };
  /** The stacks so far (network, access); the builder adds its own, in deployment order. */
  result: StayupStacks;
}

/** Renders one topology's compute (and whatever it needs besides the network) into CDK stacks. */
export type AwsTopologyBuilder = (context: AwsTopologyContext) => void;
