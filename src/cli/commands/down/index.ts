import path from "node:path";
import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import { describeLeftover, findLeftovers, stopLeftovers } from "../../../local/leftovers.ts";
import { localRedisPassword } from "../../../local/redis/process.ts";
import { stateDirOption } from "../../options.ts";

/**
 * `stayup down`: stops the stack running from `stateDir` (its instances drain first). A runtime
 * that was killed (`kill -9`) leaves its Redis nodes, Sentinels and instances running: `down` stops
 * those, as the next `up` would (their data kept as the newest copy).
 */
export async function down(opts: { stateDir: string }): Promise<void> {
  const client = StackClient.find(opts.stateDir);
  if (!client && findLeftovers(opts.stateDir).length > 0) {
    const stopped = await stopLeftovers(opts.stateDir, localRedisPassword(opts.stateDir));
    console.log(
      `the stack's runtime is gone (killed?); stopped ${stopped.length} process(es) it left: ${stopped.map(describeLeftover).join(", ")}`,
    );
    return;
  }
  if (!client) {
    // Nothing to stop is what `down` is for: safe to run twice, or in a script's cleanup.
    console.log(`no stack is running from ${path.resolve(opts.stateDir)}: nothing to stop`);
    return;
  }
  const running = client;
  process.stderr.write(`stopping the stack (pid ${running.state.pid}): instances drain first...\n`);
  await running.shutdown();
  console.log("stack stopped");
}

export function register(program: Command): void {
  program
    .command("down")
    .description("stop a stack started with `stayup up --detach` (or in another terminal)")
    .addOption(stateDirOption())
    .action(down);
}
