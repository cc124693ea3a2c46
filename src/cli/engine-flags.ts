/** The --engine-* flags shared by `create` and `swarm bootstrap` (SPEC §2). */
import { Flags } from '@oclif/core';
import { TmachineError } from '../errors.js';
import type { EngineOptions } from '../store/machine-record.js';

export const engineFlags = {
  'engine-install': Flags.string({
    description: 'How the engine gets onto the host: bundle (offline, default), script, package, none',
    options: ['bundle', 'script', 'package', 'none'],
    helpGroup: 'ENGINE',
  }),
  'engine-version': Flags.string({ description: 'Engine version to install (bundle: fetched as Docker static release)', helpGroup: 'ENGINE' }),
  'engine-bundle': Flags.string({ description: 'Engine bundle (Docker static release tarball): local path or URL', helpGroup: 'ENGINE' }),
  'engine-bundle-sha256': Flags.string({ description: 'Expected SHA-256 of --engine-bundle', helpGroup: 'ENGINE' }),
  'engine-install-url': Flags.string({
    description: 'Convenience script URL for --engine-install script',
    default: 'https://get.docker.com',
    helpGroup: 'ENGINE',
  }),
  'engine-opt': Flags.string({ description: 'daemon.json option k=v (repeatable)', multiple: true, helpGroup: 'ENGINE' }),
  'engine-env': Flags.string({ description: 'Environment variable k=v for dockerd (repeatable)', multiple: true, helpGroup: 'ENGINE' }),
  'engine-label': Flags.string({ description: 'Engine label k=v (repeatable)', multiple: true, helpGroup: 'ENGINE' }),
  'engine-insecure-registry': Flags.string({ description: 'Registry to reach without TLS verification (repeatable)', multiple: true, helpGroup: 'ENGINE' }),
  'engine-registry-mirror': Flags.string({ description: 'Registry mirror URL (repeatable)', multiple: true, helpGroup: 'ENGINE' }),
  'engine-storage-driver': Flags.string({ description: 'Storage driver for the engine', helpGroup: 'ENGINE' }),
  'engine-registry-ca': Flags.string({
    description: 'Trust a private registry CA on the host: HOST:PORT=FILE (repeatable)',
    multiple: true,
    helpGroup: 'ENGINE',
  }),
  'engine-migrate-tls': Flags.boolean({
    description: 'An engine set up by hand to listen on plain TCP (2375): move that aside and serve TLS on 2376 instead of refusing',
    helpGroup: 'ENGINE',
  }),
};

export type EngineFlagValues = {
  [K in keyof typeof engineFlags]?: (typeof engineFlags)[K] extends { multiple: true } ? string[] : K extends 'engine-migrate-tls' ? boolean : string;
};

function checkPairs(flag: string, values: string[] | undefined): string[] {
  for (const v of values ?? []) {
    if (!/^[^=\s]+=/.test(v)) throw new TmachineError(`--${flag} takes k=v, not "${v}"`);
  }
  return values ?? [];
}

export function engineOptionsFromFlags(flags: Record<string, unknown>, defaultInstall: EngineOptions['install']): EngineOptions {
  const list = (k: string) => (flags[k] as string[] | undefined) ?? [];
  const str = (k: string) => flags[k] as string | undefined;
  const registryCAs = list('engine-registry-ca').map((v) => {
    const m = /^([^=\s]+:\d+)=(.+)$/.exec(v);
    if (!m) throw new TmachineError(`--engine-registry-ca takes HOST:PORT=FILE, not "${v}"`);
    return { registry: m[1]!, caFile: m[2]! };
  });
  const install = (str('engine-install') as EngineOptions['install'] | undefined) ?? defaultInstall;
  return {
    install,
    ...(str('engine-version') ? { version: str('engine-version') } : {}),
    ...(str('engine-bundle') ? { bundle: str('engine-bundle') } : {}),
    ...(str('engine-bundle-sha256') ? { bundleSha256: str('engine-bundle-sha256') } : {}),
    ...(install === 'script' ? { installUrl: str('engine-install-url') } : {}),
    opts: checkPairs('engine-opt', list('engine-opt')),
    env: checkPairs('engine-env', list('engine-env')),
    labels: checkPairs('engine-label', list('engine-label')),
    insecureRegistries: list('engine-insecure-registry'),
    registryMirrors: list('engine-registry-mirror'),
    ...(str('engine-storage-driver') ? { storageDriver: str('engine-storage-driver') } : {}),
    registryCAs,
    port: 2376,
    ...(flags['engine-migrate-tls'] === true ? { migrateTls: true } : {}),
  };
}
