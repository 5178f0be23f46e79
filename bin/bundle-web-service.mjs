#!/usr/bin/env node
// Writes the web-service bundle (the one file every instance and every container runs) to a folder:
//   node bin/bundle-web-service.mjs dist
import process from "node:process";
import { register } from "tsx/esm/api";

register();
const { bundleWebService } = await import("../src/web-service/bundle.ts");
const outDir = process.argv[2] ?? "dist";
process.stdout.write(`${await bundleWebService(outDir)}\n`);
