/**
 * Flag values to typed options: given value, else its environment variable, else the
 * default; coerced by flag type; then parsed by the driver's schema. Every failure is an
 * `invalid-input` DriverError naming the flag.
 */
import type { z } from 'zod';
import { DriverError } from './errors.js';
import type { DriverFlag, RawDriverOptions } from './driver.js';

export function resolveRawOptions(flags: DriverFlag[], given: Record<string, unknown>): RawDriverOptions {
  const out: RawDriverOptions = {};
  for (const flag of flags) {
    let value: unknown = given[flag.name];
    if (value === undefined) for (const alias of flag.aliases ?? []) value ??= given[alias];
    if (value === undefined && flag.env && process.env[flag.env] !== undefined) value = process.env[flag.env];
    out[flag.name] = value === undefined ? flag.default : coerce(flag, value);
  }
  return out;
}

export function parseOptions<T>(schema: z.ZodType<T>, raw: RawDriverOptions, flags: DriverFlag[]): T {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = optionIssues(parsed.error)[0];
  const key = issue?.flag ?? '';
  const flag = flags.find((f) => f.name === key);
  const shown = raw[key] === undefined ? '' : ` "${String(raw[key])}"`;
  throw new DriverError('invalid-input', flag ? `--${flag.name}${shown}: ${issue?.message ?? 'invalid'}` : `driver options: ${issue?.message ?? 'invalid'}`, {
    hint: flag ? flag.description : 'see `tmachine create --driver NAME --help`',
  });
}

/** One option's complaint: the flag, where in its value (a list item's index), and the schema's words. */
export interface OptionIssue {
  flag: string;
  /** Inside the flag's value: `[1]` for the second item of a list. */
  at: Array<string | number>;
  message: string;
}

/**
 * The schema's complaints in order, for a caller that knows where each value came from (a
 * cluster file reports them at the line of the option).
 */
export function optionIssues(error: z.ZodError): OptionIssue[] {
  return error.issues.map((issue) => {
    const [flag, ...at] = issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k));
    return { flag: String(flag ?? ''), at, message: issue.message };
  });
}

function coerce(flag: DriverFlag, value: unknown): RawDriverOptions[string] {
  switch (flag.type) {
    case 'string':
      return String(value);
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (['true', '1', 'yes', ''].includes(String(value))) return true;
      if (['false', '0', 'no'].includes(String(value))) return false;
      throw new DriverError('invalid-input', `--${flag.name} takes true or false, not "${String(value)}"`);
    case 'number': {
      const n = typeof value === 'number' ? value : Number(String(value).trim() === '' ? NaN : value);
      if (!Number.isFinite(n)) throw new DriverError('invalid-input', `--${flag.name} takes a number, not "${String(value)}"`);
      return n;
    }
    case 'string[]':
      // Repeated flags and comma lists alike: --x a,b --x c is [a, b, c].
      return (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter(Boolean);
  }
}

/** The options safe to store: secret flags dropped. */
export function storableOptions(flags: DriverFlag[], raw: RawDriverOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const flag of flags) if (!flag.secret && raw[flag.name] !== undefined) out[flag.name] = raw[flag.name];
  return out;
}
