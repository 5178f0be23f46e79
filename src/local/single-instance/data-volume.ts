import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { EventPublisher } from "../events/bus.ts";

/** Who holds the volume: an instance id and the pid that proves it is still running. */
export interface Attachment {
  instanceId: string;
  pid: number;
}

export type AttachDecision =
  | { action: "attach" }
  /** Already attached to this instance: nothing to do. */
  | { action: "already-attached" }
  /** The holder is dead (killed, crashed): detach it first, then attach (the EBS "force detach"). */
  | { action: "detach-then-attach"; from: Attachment }
  /** The holder still runs: an EBS volume attaches to one instance at a time, so wait. */
  | { action: "refuse"; holder: Attachment };

/**
 * The attach rule, pure: a volume is attached to at most one instance; a live holder keeps it, a
 * dead holder loses it to whoever asks next.
 */
export function decideAttach(
  current: Attachment | undefined,
  instanceId: string,
  isAlive: (pid: number) => boolean,
): AttachDecision {
  if (!current) return { action: "attach" };
  if (current.instanceId === instanceId) return { action: "already-attached" };
  if (isAlive(current.pid)) return { action: "refuse", holder: current };
  return { action: "detach-then-attach", from: current };
}

/** The detach rule, pure: only the holder's own detach counts; anyone else's is refused. */
export function decideDetach(current: Attachment | undefined, instanceId: string): "detach" | "not-attached" {
  return current?.instanceId === instanceId ? "detach" : "not-attached";
}

export class VolumeInUseError extends Error {
  constructor(
    readonly volumeId: string,
    readonly holder: Attachment,
  ) {
    super(`volume ${volumeId} is attached to ${holder.instanceId} (pid ${holder.pid}), which still runs`);
    this.name = "VolumeInUseError";
  }
}

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but is not ours; still alive.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * The single instance's data volume (seed 003's secondary EBS volume): a directory that belongs to
 * the group, not to an instance. The attachment is recorded on disk next to it, so a runtime that
 * was killed leaves a record the next one can judge (a dead holder is detached, never ignored).
 */
export class DataVolume {
  readonly volumeId: string;
  private readonly recordFile: string;

  constructor(
    /** The directory that outlives instances (e.g. .stayup/volumes/<group>). */
    readonly dir: string,
    private readonly events: EventPublisher,
    private readonly isAlive: (pid: number) => boolean = processAlive,
  ) {
    this.volumeId = `vol-${path.basename(dir)}`;
    mkdirSync(path.join(dir, "data"), { recursive: true, mode: 0o700 });
    this.recordFile = path.join(dir, "attachment.json");
  }

  /** Where the attached instance keeps its data (Redis's append-only file). */
  get dataDir(): string {
    return path.join(this.dir, "data");
  }

  get attachment(): Attachment | undefined {
    try {
      const record = JSON.parse(readFileSync(this.recordFile, "utf8")) as Partial<Attachment>;
      if (typeof record.instanceId === "string" && typeof record.pid === "number") {
        return { instanceId: record.instanceId, pid: record.pid };
      }
    } catch {
      // No record (never attached, or detached): available.
    }
    return undefined;
  }

  /** Attaches to `instanceId` (whose liveness is `pid`); throws VolumeInUseError if a live instance holds it. */
  attach(instanceId: string, pid: number): void {
    const decision = decideAttach(this.attachment, instanceId, this.isAlive);
    if (decision.action === "already-attached") return;
    if (decision.action === "refuse") throw new VolumeInUseError(this.volumeId, decision.holder);
    if (decision.action === "detach-then-attach") {
      this.detach(decision.from.instanceId, "its instance is gone");
    }
    // Written to a temporary file and renamed: a crash mid-write never leaves a half record.
    const tmp = `${this.recordFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ instanceId, pid }));
    renameSync(tmp, this.recordFile);
    this.events.publish({ type: "volume.attached", volumeId: this.volumeId, instanceId });
  }

  /** Detaches from `instanceId`; a no-op if it is not the holder. */
  detach(instanceId: string, reason: string): boolean {
    if (decideDetach(this.attachment, instanceId) === "not-attached") return false;
    rmSync(this.recordFile, { force: true });
    this.events.publish({ type: "volume.detached", volumeId: this.volumeId, instanceId, reason });
    return true;
  }

  describe(): { volumeId: string; dir: string; attachedTo?: string } {
    return { volumeId: this.volumeId, dir: this.dir, attachedTo: this.attachment?.instanceId };
  }
}
