/**
 * The error a driver throws. The core matches on `kind` (never on the message) to decide
 * what to do: fall back to another zone on `capacity`, treat `not-found` as already gone,
 * say "check your credentials" on `auth`. `message` is the one line the user sees.
 */
export type DriverErrorKind =
  | 'not-found'
  | 'already-exists'
  | 'capacity'
  | 'quota'
  | 'auth'
  | 'unreachable'
  | 'invalid-input'
  | 'unsupported'
  | 'timeout'
  | 'interrupted'
  | 'failed';

export interface DriverErrorOptions {
  /** How to fix it; printed after the message on the same line. */
  hint?: string;
  cause?: unknown;
}

export class DriverError extends Error {
  readonly kind: DriverErrorKind;
  readonly hint: string | undefined;

  constructor(kind: DriverErrorKind, message: string, options: DriverErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DriverError';
    this.kind = kind;
    this.hint = options.hint;
  }

  /** The single line the user sees. */
  get userLine(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/** True when `error` is a DriverError (of one of `kinds`, when given). */
export function isDriverError(error: unknown, ...kinds: DriverErrorKind[]): error is DriverError {
  return error instanceof DriverError && (kinds.length === 0 || kinds.includes(error.kind));
}
