/**
 * The one error type that carries a user-facing message. Anything else that reaches the top
 * is a bug or an unexpected failure and is reported as such (one line, stack only with --debug).
 */
import { DriverError, type DriverErrorKind } from '../drivers/kit/errors.js';
import { redact } from './redact.js';

export { DriverError, isDriverError, type DriverErrorKind } from '../drivers/kit/errors.js';

export interface TmachineErrorOptions {
  /** How to fix it; printed on the same line after the message. */
  hint?: string;
  exitCode?: number;
  cause?: unknown;
  /** What went wrong, for callers that decide on it (default "failed"). */
  kind?: DriverErrorKind;
}

/**
 * The core's error. It is the kit's DriverError (so the one error type carries the one line
 * and a kind everywhere, drivers included) with an exit code.
 */
export class TmachineError extends DriverError {
  readonly exitCode: number;

  /**
   * A driver's DriverError is a TmachineError too: one error type carries the user's line,
   * whether the core or a driver threw it (a driver cannot import the core's class).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof DriverError;
  }

  constructor(message: string, options: TmachineErrorOptions = {}) {
    super(options.kind ?? 'failed', message, { ...(options.hint ? { hint: options.hint } : {}), ...(options.cause !== undefined ? { cause: options.cause } : {}) });
    this.name = 'TmachineError';
    this.exitCode = options.exitCode ?? 1;
  }
}

export function isDebug(): boolean {
  return process.argv.includes('--debug') || process.env['TMACHINE_DEBUG'] === '1';
}

interface OclifLikeError {
  message: string;
  oclif?: { exit?: number };
  code?: string;
}

function oclifExitCode(error: unknown): number | undefined {
  const e = error as OclifLikeError;
  return typeof e?.oclif?.exit === 'number' ? e.oclif.exit : undefined;
}

/** Turn any thrown value into the one line we print. */
export function userLineOf(error: unknown): string {
  if (error instanceof DriverError) return error.userLine;
  if (error instanceof Error) {
    // oclif parse errors are several lines ("Nonexistent flag: --x\nSee more help with --help").
    const lines = error.message.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
    const first = lines[0] ?? error.name;
    if (error.constructor.name.endsWith('ParseError') || /^(Nonexistent flag|Unexpected argument|Missing|Expected|Parsing)/.test(first)) {
      // "Parsing --managers" alone does not say what is wrong; oclif's reason is the next line.
      const reason = /^Parsing /.test(first) ? lines.find((l) => /^(Expected|Invalid|Received|must)/i.test(l)) : undefined;
      return `${first}${reason ? `: ${reason}` : ''} (see --help for usage)`;
    }
    if (/^command .* not found$/.test(first)) return `${first} (run \`tmachine --help\` to list commands)`;
    return first;
  }
  return String(error);
}

export async function reportAndExit(error: unknown): Promise<never> {
  const exit = oclifExitCode(error);
  // oclif's this.exit(n) throws an ExitError; pass the code through silently.
  if ((error as { code?: string })?.code === 'EEXIT' && exit !== undefined) process.exit(exit);
  const line = redact(userLineOf(error));
  process.stderr.write(`Error: ${line}\n`);
  if (isDebug() && error instanceof Error && error.stack) process.stderr.write(redact(error.stack) + '\n');
  const code = error instanceof DriverError ? ((error as Partial<TmachineError>).exitCode ?? (error.kind === 'interrupted' ? 130 : 1)) : exit && exit !== 0 ? exit : 1;
  process.exit(code);
}
