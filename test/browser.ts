import { mkdirSync } from "node:fs";
import path from "node:path";
import { type Browser, chromium } from "playwright-core";
import { repoRoot } from "./helpers.ts";

/** Debian's chromium, as .ci/run installs it; headless, nothing fetched from the network. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** Screenshots are kept as test artifacts here (gitignored). */
export function artifactPath(name: string): string {
  const dir = path.join(repoRoot, "test-artifacts");
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
