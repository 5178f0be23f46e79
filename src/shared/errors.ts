/**
 * An error a user can act on: what went wrong, and what to do about it.
 * The CLI prints these without a stack trace.
 */
export class StayupError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = "StayupError";
  }
}
