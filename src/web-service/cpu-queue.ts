/**
 * CPU-bound request work, run one task per event-loop turn in arrival order. Node runs a handler's
 * synchronous work as soon as its request is parsed, so under overload every health check (the
 * target group's `/health`, the region's `/health/deep` and its Redis round trip) waited behind all
 * the CPU-heavy requests that arrived before it: a busy instance looked dead, and a busy region
 * failed over. Here the loop polls for I/O between two tasks, so those checks are answered within
 * one task's time however long the queue is.
 *
 * A task whose client left while it waited (the load balancer closes the connection when its own
 * client gives up, or when it sends the try to another target) is skipped: CPU spent on an answer
 * nobody reads is what turns an overload into a collapse.
 */
export class CpuQueue {
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;
  /** Tasks run, and tasks skipped because their client was gone (for metrics and tests). */
  ran = 0;
  skipped = 0;

  /** Tasks waiting for their turn. */
  get length(): number {
    return this.waiting.length;
  }

  /**
   * Runs `work` at its turn, unless `stillWanted()` says by then that nobody waits for it
   * (resolves `undefined` then).
   */
  run<T>(stillWanted: () => boolean, work: () => T): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      this.waiting.push(() => {
        if (!stillWanted()) {
          this.skipped++;
          resolve(undefined);
          return;
        }
        this.ran++;
        try {
          resolve(work());
        } catch (error) {
          reject(error as Error);
        }
      });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.waiting.length === 0) return;
    this.scheduled = true;
    // setImmediate runs after the loop's I/O poll: queued between tasks, every ready socket (a
    // health check, a closed connection, a Redis reply) is handled before the next task.
    setImmediate(() => {
      this.scheduled = false;
      this.waiting.shift()?.();
      this.schedule();
    });
  }
}
