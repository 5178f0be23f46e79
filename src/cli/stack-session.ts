import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { StackClient } from "../local/control-plane/client.ts";
import { findLeftovers } from "../local/leftovers.ts";
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

  /**
   * A throwaway stack on free ports with its state in a temporary directory. `onStateDir` learns
   * that directory before anything starts, so a caller can kill what started (killTemporaryStack)
   * if it must exit while the stack is still starting.
   */
  static async temporary(
    resolved: ResolvedStack,
    onEvent?: (line: string) => void,
    onStateDir?: (stateDir: string) => void,
  ): Promise<StackSession> {
    const stateDir = mkdtempSync(path.join(tmpdir(), "stayup-"));
    onStateDir?.(stateDir);
    let stack: LocalStack;
    try {
      stack = createLocalStack({ stack: resolved, stateDir, listenerPort: 0, redisPort: 0, dnsPort: 0 });
    } catch (error) {
      rmSync(stateDir, { recursive: true, force: true });
      throw error;
    }
    if (onEvent) stack.events.subscribe((e) => onEvent(e.type));
    const control = new ControlPlaneServer(stack, () => undefined);
    let started = false;
    try {
      await stack.start();
      started = true;
      await control.listen();
    } catch (error) {
      await control.close().catch(() => undefined);
      // A failed start stops what it started itself; a stack that started is stopped here.
      if (started)
        await stack.stop("temporary stack: its control plane could not listen").catch(() => undefined);
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

/**
 * Kills at once, synchronously, every process a temporary stack of this process started (from its
 * process registry, each identified by pid and start, a service with its process group) and removes
 * its folder: for a process that must exit now (a second Ctrl-C), where an orderly stop cannot wait.
 */
export function killTemporaryStack(stateDir: string): number {
  const left = findLeftovers(stateDir);
  for (const p of left) {
    for (const target of [...(p.leaderGone ? [] : [p.group ? -p.pid : p.pid]), ...p.members]) {
      try {
        process.kill(target, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
  rmSync(stateDir, { recursive: true, force: true });
  return left.length;
}
