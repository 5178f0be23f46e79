import path from "node:path";
import { writePrivateFileAtomic } from "../shared/private-file.ts";
import { processGroupOf, processStartOf } from "../shared/process-info.ts";

/** A process the runtime started, recorded so that a run killed with SIGKILL leaves nothing unknown. */
export interface RecordedProcess {
  pid: number;
  kind: "redis-node" | "sentinel" | "redis" | "instance";
  /** Node name (redis-a...) or instance id. */
  name: string;
  port?: number;
  /** Where a Redis node keeps its data (its replication record lives one level up). */
  dir?: string;
  startedAt: string;
  /**
   * Its start as the kernel counts it (shared/process-info.ts): with the pid, what identifies it
   * later, so a pid reused by another process (the system's redis-server, say) is never stopped.
   * Missing in an older stayup's file (then its command line is checked).
   */
  processStart?: string;
  /** It leads its own process group (a service started detached): stopping it stops the group. */
  group?: boolean;
}

/** `<state>/processes.json`: read by leftovers.ts after a run was killed. */
export interface ProcessFile {
  runtimePid: number;
  /** The runtime's start (as `processStart`): a runtime pid reused later is not taken for it. */
  runtimeStart?: string;
  processes: RecordedProcess[];
}

export const processFileName = "processes.json";

/** Every process this runtime started, kept in `<state>/processes.json` (atomic, 0600). */
export class ProcessRegistry {
  private readonly processes = new Map<number, RecordedProcess>();

  private readonly runtimeStart = processStartOf(process.pid);

  constructor(private readonly stateDir: string) {}

  add(entry: Omit<RecordedProcess, "startedAt" | "processStart" | "group">): void {
    // Read now, while the process surely is the one just started.
    const processStart = processStartOf(entry.pid);
    this.processes.set(entry.pid, {
      ...entry,
      startedAt: new Date().toISOString(),
      ...(processStart ? { processStart } : {}),
      ...(processGroupOf(entry.pid) === entry.pid ? { group: true } : {}),
    });
    this.save();
  }

  remove(pid: number): void {
    if (this.processes.delete(pid)) this.save();
  }

  private save(): void {
    const file: ProcessFile = {
      runtimePid: process.pid,
      ...(this.runtimeStart ? { runtimeStart: this.runtimeStart } : {}),
      processes: [...this.processes.values()],
    };
    writePrivateFileAtomic(path.join(this.stateDir, processFileName), `${JSON.stringify(file, null, 2)}\n`);
  }
}
