/** The signals that interrupt a long command (Ctrl-C, `kill`, the terminal closed), with the exit code a shell reports for each (128 + its number). */
export const interruptSignals = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
export type InterruptSignal = keyof typeof interruptSignals;

/**
 * While a long command runs: the first interrupt signal calls `first` (the command winds down on
 * its own: a drill clears its faults, a roll is stopped and rolled back); another calls `again` (to
 * say what is left) and exits at once with that signal's code. Returns what removes the handlers.
 */
export function trapInterruptSignals(
  first: (signal: InterruptSignal) => void,
  again: (signal: InterruptSignal) => void,
): () => void {
  let interrupted = false;
  const removers = (Object.keys(interruptSignals) as InterruptSignal[]).map((signal) => {
    const handler = () => {
      if (interrupted) {
        again(signal);
        process.exit(interruptSignals[signal]);
      }
      interrupted = true;
      first(signal);
    };
    process.on(signal, handler);
    return () => process.off(signal, handler);
  });
  return () => {
    for (const remove of removers) remove();
  };
}
