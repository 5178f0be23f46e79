import type { Command } from "commander";
import { StackClient } from "../../../local/control-plane/client.ts";
import { stateDirOption } from "../../options.ts";

/** `stayup down`: stops the stack running from `stateDir` (its instances drain first). */
export async function down(opts: { stateDir: string }): Promise<void> {
  const client = StackClient.require(opts.stateDir);
  process.stderr.write(`stopping the stack (pid ${client.state.pid}): instances drain first...\n`);
  await client.shutdown();
  console.log("stack stopped");
}

export function register(program: Command): void {
  program
    .command("down")
    .description("stop a stack started with `stayup up --detach` (or in another terminal)")
    .addOption(stateDirOption())
    .action(down);
}
