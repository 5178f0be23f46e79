import path from "node:path";
import { writePrivateFileAtomic } from "../shared/private-file.ts";

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
}

/** `<state>/processes.json`: read by leftovers.ts after a run was killed. */
export interface ProcessFile {
  runtimePid: number;
  processes: RecordedProcess[];
}

export const processFileName = "processes.json";

/** Every process this runtime started, kept in `<state>/processes.json` (atomic, 0600). */
export class ProcessRegistry {
  private readonly processes = new Map<number, RecordedProcess>();

  constructor(private readonly stateDir: string) {}

  add(entry: Omit<RecordedProcess, "startedAt">): void {
    this.processes.set(entry.pid, { ...entry, startedAt: new Date().toISOString() });
    this.save();
  }

  remove(pid: number): void {
    if (this.processes.delete(pid)) this.save();
  }

  private save(): void {
    const file: ProcessFile = { runtimePid: process.pid, processes: [...this.processes.values()] };
    writePrivateFileAtomic(path.join(this.stateDir, processFileName), `${JSON.stringify(file, null, 2)}\n`);
  }
}
