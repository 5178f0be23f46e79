#!/usr/bin/env node
// The CDK app of cdk.json, run from the TypeScript sources through tsx.
import { register } from "tsx/esm/api";

register();
await import("../src/aws/cdk-main.ts");
