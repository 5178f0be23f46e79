/**
 * Entry point of the CDK app (`cdk.json`): `npx cdk synth -c env=prod`.
 * Context: `env` (dev|prod, default dev), `config` (default stayup.config.ts).
 */
import path from "node:path";
import { type EnvironmentName, loadStack } from "../stack/index.ts";
import { addStayupStacks } from "./app.ts";
import { acknowledgeFindings, createStayupApp, silenceCfnLint } from "./compliance/checks.ts";

const app = createStayupApp({ compliance: true });
const environment = (app.node.tryGetContext("env") ?? "dev") as EnvironmentName;
const config = (app.node.tryGetContext("config") ?? "stayup.config.ts") as string;
const stack = await loadStack(config, environment);
const stacks = addStayupStacks(app, stack, path.join(app.outdir, "..", ".stayup", "aws-bundle"));
acknowledgeFindings(stacks, stack);
silenceCfnLint(stacks);
app.synth();
