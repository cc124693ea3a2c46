/** Debug logging (--debug): remote commands and API calls, always redacted, always on stderr. */
import { isDebug } from '../errors.js';
import { redact } from './redact.js';

export function debug(scope: string, message: string): void {
  if (!isDebug()) return;
  process.stderr.write(`[debug ${scope}] ${redact(message)}\n`);
}

/** Plain informational line on stderr (stdout stays for data). */
export function info(message: string): void {
  process.stderr.write(redact(message) + '\n');
}

export function warn(message: string): void {
  process.stderr.write(`Warning: ${redact(message)}\n`);
}
