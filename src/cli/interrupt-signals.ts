/** The signals that interrupt a long command (Ctrl-C, `kill`, the terminal closed), with the exit code a shell reports for each (128 + its number). */
export const interruptSignals = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
export type InterruptSignal = keyof typeof interruptSignals;
