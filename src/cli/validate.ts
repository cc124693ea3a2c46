/**
 * Checks of user input that need nothing remote, run by the commands before anything is
 * contacted or made: a bad port, an impossible address or a file that is not an engine
 * bundle is one line, not a raw Node error from deep inside a create.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { resolveDriverOptions } from '../../drivers/registry.js';
import type { DriverDefinition } from '../../drivers/types.js';
import { verifyBundleLayout } from '../engine/bundle.js';
import { TmachineError } from '../errors.js';

/** A TCP port a host can listen on. */
export function checkPort(flag: string, value: unknown): void {
  const n = typeof value === 'number' ? value : Number(String(value));
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new TmachineError(`--${flag} must be a port number from 1 to 65535, not "${String(value)}"`, { hint: `fix --${flag}` });
  }
}

// RFC 1123 host names: labels of letters, digits and '-', not starting or ending with '-'.
const HOST_LABEL = /^(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$/;

/** An IP address, or a name that DNS could resolve; never sent anywhere to find out. */
export function checkHostAddress(flag: string, value: string): void {
  if (net.isIP(value) !== 0) return;
  const bare = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (net.isIPv6(bare)) return;
  // All digits and dots is meant as an IPv4 address; a name cannot be all-numeric.
  if (/^[\d.]+$/.test(value)) {
    throw new TmachineError(`--${flag} "${value}" is not a valid IPv4 address`, { hint: 'each of the four parts is 0-255, e.g. 203.0.113.10' });
  }
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  if (name.length === 0 || name.length > 253 || !name.split('.').every((label) => HOST_LABEL.test(label))) {
    throw new TmachineError(`--${flag} "${value}" is neither an IP address nor a valid host name`, {
      hint: 'give an IPv4/IPv6 address or a DNS name of letters, digits, "-" and "."',
    });
  }
}

/**
 * The driver flags whose meaning is known from their name: `*-port` is a TCP port,
 * `*-ip-address`/`*-private-address` a host address. Values from flags and environment
 * variables alike (as the driver will see them).
 */
export function checkDriverFlagValues(definition: DriverDefinition, given: Record<string, unknown>): void {
  const options = resolveDriverOptions(definition.flags, given);
  for (const flag of definition.flags) {
    const value = options[flag.name];
    if (value === undefined || value === '') continue;
    if (/-port$/.test(flag.name) && flag.type === 'number') checkPort(flag.name, value);
    if (/-(ip|private)-address$/.test(flag.name) && typeof value === 'string') checkHostAddress(flag.name, value);
  }
}

/** `--engine-bundle PATH`: the file exists and is a gzip'd tar with the static-release layout. */
export async function checkLocalEngineBundle(source: string | undefined): Promise<void> {
  if (!source || /^https?:\/\//i.test(source)) return;
  const file = path.resolve(source);
  let stat;
  try {
    stat = await fs.stat(file);
  } catch {
    throw new TmachineError(`engine bundle ${file} not found`, { hint: 'check the path given to --engine-bundle' });
  }
  if (!stat.isFile()) throw new TmachineError(`engine bundle ${file} is not a file`, { hint: 'give the .tgz itself' });
  await verifyBundleLayout(file);
}
