/**
 * Entry point of the CDK app (`cdk.json`): `npx cdk synth -c env=prod`.
 * Context: `env` (dev|prod, default dev), `config` (default stayup.config.ts), `topology` (default:
 * the description's), `imageTag` (the ecs topology's `<env>-<git sha>`, default the commit checked out).
 */
import path from "node:path";
import { type EnvironmentName, loadStack, type Topology } from "../stack/index.ts";
import { addStayupStacks } from "./app.ts";
import { acknowledgeFindings, createStayupApp, silenceCfnLint } from "./compliance/checks.ts";

const app = createStayupApp({ compliance: true });
const environment = (app.node.tryGetContext("env") ?? "dev") as EnvironmentName;
const config = (app.node.tryGetContext("config") ?? "stayup.config.ts") as string;
const topology = app.node.tryGetContext("topology") as Topology | undefined;
const stack = await loadStack(config, environment, { topology });
const imageTag = app.node.tryGetContext("imageTag") as string | undefined;
const stacks = addStayupStacks(app, stack, path.join(app.outdir, "..", ".stayup", "aws-bundle"), {
  imageTag,
});
acknowledgeFindings(stacks, stack);
silenceCfnLint(stacks);
app.synth();
