#!/usr/bin/env node
// Runs the TypeScript sources, bundled once after each change (bin/prebuilt.mjs), so `npx stayup`
// works right after `npm ci` and answers quickly.
import { loadCli } from "./prebuilt.mjs";

const { main } = await loadCli();
await main();
