/**
 * Finds drivers by name. Built-in drivers are listed here with a lazy import of their
 * definition module (flags only); a name that is not built in is loaded as an npm package
 * `tmachine-driver-<name>` (or the name itself) exporting `definition`.
 */
import { TmachineError } from '../src/errors.js';
import type { DriverDefinition, DriverFlag, DriverOptions } from './types.js';

type DefinitionModule = { definition: DriverDefinition };

const builtIn: Record<string, () => Promise<DefinitionModule>> = {
  docker: () => import('./docker/definition.js'),
  generic: () => import('./generic/definition.js'),
  ec2: () => import('./ec2/definition.js'),
};

/** Docker Machine's driver names, accepted as aliases. */
const builtInAliases: Record<string, string> = { amazonec2: 'ec2', google: 'gce' };

export function builtInDriverNames(): string[] {
  return Object.keys(builtIn).sort();
}

export async function loadDriverDefinition(name: string): Promise<DriverDefinition> {
  const canonical = builtInAliases[name] ?? name;
  const loader = builtIn[canonical];
  if (loader) return (await loader()).definition;
  if (!/^(@[a-z0-9-]+\/)?[a-z0-9][a-z0-9._-]*$/.test(name)) {
    throw unknownDriver(name);
  }
  for (const pkg of [`tmachine-driver-${name}`, name]) {
    try {
      const mod = (await import(pkg)) as Partial<DefinitionModule>;
      if (mod.definition && typeof mod.definition.load === 'function') return mod.definition;
      throw new TmachineError(`package "${pkg}" does not export a tmachine driver definition`, {
        hint: 'a driver package exports `definition` (see drivers/types.ts)',
      });
    } catch (error) {
      if (error instanceof TmachineError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw error;
    }
  }
  throw unknownDriver(name);
}

function unknownDriver(name: string): TmachineError {
  return new TmachineError(`unknown driver "${name}"`, {
    hint: `built-in drivers: ${builtInDriverNames().join(', ')}; a third-party driver is the npm package tmachine-driver-${name}`,
  });
}

/**
 * Resolves flag values: given value, else its environment variable, else the default.
 * Values come in as strings (CLI) or typed (cluster file).
 */
export function resolveDriverOptions(flags: DriverFlag[], given: Record<string, unknown>): DriverOptions {
  const out: DriverOptions = {};
  for (const flag of flags) {
    let value: unknown = given[flag.name];
    if (value === undefined) for (const alias of flag.aliases ?? []) value ??= given[alias];
    if (value === undefined && flag.env && process.env[flag.env] !== undefined) value = process.env[flag.env];
    if (value === undefined) {
      out[flag.name] = flag.default;
      continue;
    }
    out[flag.name] = coerce(flag, value);
  }
  return out;
}

function coerce(flag: DriverFlag, value: unknown): DriverOptions[string] {
  switch (flag.type) {
    case 'string':
      return String(value);
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (['true', '1', 'yes', ''].includes(String(value))) return true;
      if (['false', '0', 'no'].includes(String(value))) return false;
      throw new TmachineError(`--${flag.name} takes true or false, not "${String(value)}"`);
    case 'number': {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new TmachineError(`--${flag.name} takes a number, not "${String(value)}"`);
      return n;
    }
    case 'string[]':
      return Array.isArray(value) ? value.map(String) : String(value).split(',').filter(Boolean);
  }
}

/** The options safe to store: secret flags dropped. */
export function storableOptions(flags: DriverFlag[], options: DriverOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const flag of flags) if (!flag.secret && options[flag.name] !== undefined) out[flag.name] = options[flag.name];
  return out;
}
