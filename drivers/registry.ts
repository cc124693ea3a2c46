/**
 * Finds drivers by name. Built-in drivers are listed here with a lazy import of their
 * definition module (flags and schemas only); a name that is not built in is loaded as an
 * npm package `tmachine-driver-<name>` (or the name itself) exporting `definition`.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DriverError } from './kit/errors.js';
import type { AnyDriverDefinition } from './kit/driver.js';

type DefinitionModule = { definition: AnyDriverDefinition };

const builtIn: Record<string, () => Promise<DefinitionModule>> = {
  docker: () => import('./docker/definition.js'),
  generic: () => import('./generic/definition.js'),
  ec2: () => import('./ec2/definition.js'),
  gce: () => import('./gce/definition.js'),
  virtualbox: () => import('./virtualbox/definition.js'),
};

/** Docker Machine's driver names, accepted as aliases. */
const builtInAliases: Record<string, string> = { amazonec2: 'ec2', google: 'gce' };

export function builtInDriverNames(): string[] {
  return Object.keys(builtIn).sort();
}

export async function builtInDefinitions(): Promise<AnyDriverDefinition[]> {
  return Promise.all(builtInDriverNames().map(async (n) => (await builtIn[n]!()).definition));
}

/** The canonical name for a Docker Machine alias ("amazonec2" → "ec2"). */
export function canonicalDriverName(name: string): string {
  return builtInAliases[name] ?? name;
}

export async function loadDriverDefinition(name: string): Promise<AnyDriverDefinition> {
  const canonical = canonicalDriverName(name);
  const loader = builtIn[canonical];
  if (loader) return (await loader()).definition;
  if (!/^(@[a-z0-9-]+\/)?[a-z0-9][a-z0-9._-]*$/.test(name)) throw unknownDriver(name);
  for (const pkg of [`tmachine-driver-${name}`, name]) {
    const mod = await importPackage(pkg);
    if (mod === undefined) continue;
    const definition = (mod as Partial<DefinitionModule>).definition;
    if (definition && typeof definition.load === 'function' && definition.optionsSchema && definition.stateSchema) return definition;
    throw new DriverError('invalid-input', `package "${pkg}" does not export a tmachine driver definition`, {
      hint: 'a driver package exports `definition` made with defineDriver() (see docs/writing-a-driver.md)',
    });
  }
  throw unknownDriver(name);
}

/**
 * Imports a driver package from where the user installed it: the current directory's
 * node_modules first (a project that `npm install`ed the driver), then tmachine's own.
 */
async function importPackage(pkg: string): Promise<unknown> {
  const bases = [path.join(process.cwd(), 'noop.js'), ...(process.env['TMACHINE_DRIVER_PATH'] ?? '').split(':').filter(Boolean).map((d) => path.join(d, 'noop.js'))];
  for (const base of bases) {
    try {
      const resolved = createRequire(base).resolve(pkg);
      return await import(pathToFileURL(resolved).href);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  try {
    return await import(pkg);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

function isNotFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

function unknownDriver(name: string): DriverError {
  return new DriverError('invalid-input', `unknown driver "${name}"`, {
    hint: `built-in drivers: ${builtInDriverNames().join(', ')}; a third-party driver is the npm package tmachine-driver-${name}`,
  });
}
