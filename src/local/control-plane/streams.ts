import type http from "node:http";

/** Limits on the control plane's live streams (`/events` and the dashboard's server-sent events). */
export interface StreamLimits {
  /** Streams open at once, all clients together; one more is answered 429. */
  maxStreams: number;
  /**
   * Bytes a stream may hold for a client that does not read (beyond what the kernel's socket
   * buffers took), on top of the history it was sent on opening (itself bounded: the bus keeps
   * its last 1000 events): past it the stream is closed, so the server never buffers without
   * bound. A dashboard reconnects and resumes by Last-Event-ID; the CLI's and drills' readers
   * keep up.
   */
  maxBufferedBytes: number;
  /**
   * How long a stream may stay backed up (a write found the socket's buffer full, and it has not
   * emptied since) before it is closed: a client that stopped reading while little is published
   * does not keep its place among `maxStreams` for ever.
   */
  drainDeadlineMs: number;
}

export const defaultStreamLimits: StreamLimits = {
  maxStreams: 32,
  maxBufferedBytes: 1024 * 1024,
  drainDeadlineMs: 30_000,
};

/** Why the server closed a stream. */
export type StreamCloseReason = "over-buffer-bound" | "drain-deadline";

/**
 * One open stream. Backpressure: once a write finds the socket's buffer full, snapshots (the
 * dashboard's status, each replacing the last) are held back, only the latest of each kind, and
 * sent when the client has read what it was sent; events are written on (the page resumes by id),
 * up to `maxBufferedBytes`. A stream past that bound, or backed up for `drainDeadlineMs`, is closed.
 */
export class LiveStream {
  /** Set once the server closed the stream because its client did not read. */
  closedBecause?: StreamCloseReason;
  /** What was sent on opening (the history), written at once: allowed on top of the bound. */
  private replayedBytes = 0;
  /** Snapshots held back while the client does not read: kind → the latest (or their merge). */
  private readonly pending = new Map<string, { value: unknown; render: (value: never) => string }>();
  private drainTimer?: NodeJS.Timeout;

  constructor(
    readonly res: http.ServerResponse,
    private readonly limits: StreamLimits,
  ) {
    res.on("drain", () => this.drained());
    res.once("close", () => this.stopDrainTimer());
  }

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  /** True while the client has not read what it was sent (the socket's buffer is full). */
  get backedUp(): boolean {
    return this.res.writableNeedDrain;
  }

  /** The kinds of snapshot held back, waiting for the client to read. */
  get heldBack(): string[] {
    return [...this.pending.keys()];
  }

  /** Writes what a new stream starts with (the history since the client's last event). */
  replay(chunk: string): void {
    if (!this.open) return;
    this.replayedBytes += Buffer.byteLength(chunk);
    this.push(chunk);
  }

  /** Writes `chunk`; false when the stream is (now) closed. */
  write(chunk: string): boolean {
    if (!this.open) return false;
    this.push(chunk);
    // writableLength counts what node holds for the socket; ending would wait for a reader that
    // never comes, so the socket is destroyed and its buffer freed.
    if (this.res.writableLength > this.limits.maxBufferedBytes + this.replayedBytes) {
      this.close("over-buffer-bound");
      return false;
    }
    return true;
  }

  /**
   * Writes `value` of `kind` (as `render` makes it), which the next of its kind supersedes: while
   * the client is backed up, one is kept per kind, the latest or, with `merge`, the held one and
   * the new one merged (a bounded merge: the caller's), written once the client has read the rest.
   */
  writeLatest<T>(
    kind: string,
    value: T,
    render: (value: T) => string,
    merge: (held: T, next: T) => T = (_, next) => next,
  ): boolean {
    if (!this.open) return false;
    if (this.backedUp) {
      const held = this.pending.get(kind) as { value: T } | undefined;
      this.pending.set(kind, { value: held ? merge(held.value, value) : value, render });
      return true;
    }
    return this.write(render(value));
  }

  private push(chunk: string): void {
    if (!this.res.write(chunk)) this.startDrainTimer();
  }

  private drained(): void {
    this.stopDrainTimer();
    const held = [...this.pending.values()];
    this.pending.clear();
    for (const { value, render } of held) if (!this.write(render(value as never))) return;
  }

  private startDrainTimer(): void {
    if (this.drainTimer) return;
    this.drainTimer = setTimeout(() => this.close("drain-deadline"), this.limits.drainDeadlineMs);
    this.drainTimer.unref();
  }

  private stopDrainTimer(): void {
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
  }

  private close(reason: StreamCloseReason): void {
    this.closedBecause = reason;
    this.pending.clear();
    this.stopDrainTimer();
    this.res.destroy();
  }
}

/** Admits streams up to the cap and keeps them, so a shutdown can end them. */
export class StreamGate {
  private readonly streams = new Set<LiveStream>();
  /** Streams the server closed because their client did not read, by reason (since start). */
  readonly closed: Record<StreamCloseReason, number> = { "over-buffer-bound": 0, "drain-deadline": 0 };

  constructor(readonly limits: StreamLimits = defaultStreamLimits) {}

  get size(): number {
    return this.streams.size;
  }

  /** Bytes each open stream holds for its client right now. */
  bufferedBytes(): number[] {
    return [...this.streams].map((s) => s.res.writableLength);
  }

  /** The open streams (for tests and diagnostics). */
  list(): LiveStream[] {
    return [...this.streams];
  }

  /**
   * Opens a stream with these headers, or answers 429 when `maxStreams` are open (undefined then).
   * `onClose` runs once when the stream ends, whoever closed it.
   */
  open(
    res: http.ServerResponse,
    headers: http.OutgoingHttpHeaders,
    onClose: () => void,
  ): LiveStream | undefined {
    if (this.streams.size >= this.limits.maxStreams) {
      res.writeHead(429, { "content-type": "application/json", "retry-after": "5" });
      res.end(
        JSON.stringify({
          error: "too many streams",
          reason: `${this.limits.maxStreams} streams are open on this control plane; close one or retry later`,
        }),
      );
      return undefined;
    }
    const stream = new LiveStream(res, this.limits);
    this.streams.add(stream);
    res.once("close", () => {
      this.streams.delete(stream);
      if (stream.closedBecause) this.closed[stream.closedBecause]++;
      onClose();
    });
    res.writeHead(200, headers);
    // The head now, not with the first event: a client learns at once that it is in.
    res.flushHeaders();
    return stream;
  }

  closeAll(): void {
    for (const s of this.streams) s.res.end();
  }
}
