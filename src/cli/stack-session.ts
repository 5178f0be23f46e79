import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { StackClient } from "../local/control-plane/client.ts";
import { ControlPlaneServer } from "../local/control-plane/server.ts";
import type { LocalStack } from "../local/runtime.ts";
import { createLocalStack } from "../local/topologies/index.ts";
import type { ResolvedStack } from "../stack/index.ts";

/**
 * Runs a stack in this process with its control plane, so callers (drills, tests) use the same
 * client API whether the stack is this process's or another one's.
 */
export class StackSession {
  private constructor(
    readonly stack: LocalStack,
    readonly control: ControlPlaneServer,
    readonly client: StackClient,
    private readonly cleanup: () => void,
  ) {}

  /** A throwaway stack on free ports with its state in a temporary directory. */
  static async temporary(resolved: ResolvedStack, onEvent?: (line: string) => void): Promise<StackSession> {
    const stateDir = mkdtempSync(path.join(tmpdir(), "stayup-"));
    let stack: LocalStack;
    try {
      stack = createLocalStack({ stack: resolved, stateDir, listenerPort: 0, redisPort: 0, dnsPort: 0 });
    } catch (error) {
      rmSync(stateDir, { recursive: true, force: true });
      throw error;
    }
    if (onEvent) stack.events.subscribe((e) => onEvent(e.type));
    const control = new ControlPlaneServer(stack, () => undefined);
    try {
      await stack.start();
      await control.listen();
    } catch (error) {
      await control.close().catch(() => undefined);
      rmSync(stateDir, { recursive: true, force: true });
      throw error;
    }
    const client = new StackClient(control.state());
    return new StackSession(stack, control, client, () => rmSync(stateDir, { recursive: true, force: true }));
  }

  async stop(): Promise<void> {
    await this.control.close();
    await this.stack.stop("temporary stack done");
    this.cleanup();
  }
}
