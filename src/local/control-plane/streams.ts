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
}

export const defaultStreamLimits: StreamLimits = { maxStreams: 32, maxBufferedBytes: 1024 * 1024 };

/** One open stream: writes that close it when its client stopped reading. */
export class LiveStream {
  /** True once closed because its client did not read. */
  overflowed = false;
  /** What was sent on opening (the history), written at once: allowed on top of the bound. */
  private replayedBytes = 0;

  constructor(
    readonly res: http.ServerResponse,
    private readonly maxBufferedBytes: number,
  ) {}

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  /** Writes what a new stream starts with (the history since the client's last event). */
  replay(chunk: string): void {
    if (!this.open) return;
    this.replayedBytes += Buffer.byteLength(chunk);
    this.res.write(chunk);
  }

  /** Writes `chunk`; false when the stream is (now) closed. */
  write(chunk: string): boolean {
    if (!this.open) return false;
    this.res.write(chunk);
    // writableLength counts what node holds for the socket; ending would wait for a reader that
    // never comes, so the socket is destroyed and its buffer freed.
    if (this.res.writableLength > this.maxBufferedBytes + this.replayedBytes) {
      this.overflowed = true;
      this.res.destroy();
      return false;
    }
    return true;
  }
}

/** Admits streams up to the cap and keeps them, so a shutdown can end them. */
export class StreamGate {
  private readonly streams = new Set<LiveStream>();

  constructor(readonly limits: StreamLimits = defaultStreamLimits) {}

  get size(): number {
    return this.streams.size;
  }

  /** Bytes each open stream holds for its client right now. */
  bufferedBytes(): number[] {
    return [...this.streams].map((s) => s.res.writableLength);
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
    const stream = new LiveStream(res, this.limits.maxBufferedBytes);
    this.streams.add(stream);
    res.once("close", () => {
      this.streams.delete(stream);
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
