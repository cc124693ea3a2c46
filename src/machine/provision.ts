/**
 * Provisioning a machine: certificates from the store's CA, OS detection, then the
 * provision/ plan (engine install, daemon config, firewall, TLS) as one progress line per
 * step. Every step checks first, so provisioning twice changes nothing the second time.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { certificateCovers, certificateMatchesCa, ensureStoreCertificates, issueServerCertificate, type StoreCertificates } from '../certs/certs.js';
import { listCachedBundles, resolveBundle, type ResolvedBundle } from '../engine/bundle.js';
import { buildBundleFromDebian } from '../engine/debian-bundle.js';
import { engineClient } from '../engine/client.js';
import { TmachineError } from '../errors.js';
import { ReconnectingHost } from '../ssh/resilient.js';
import type { SshConnection } from '../ssh/connection.js';
import type { RemoteHost } from '../ssh/types.js';
import type { EngineOptions, MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { connectMachine } from './connect.js';

export interface EngineSource {
  bundle?: ResolvedBundle;
}

/**
 * The bundle every machine of one command gets: --engine-bundle, else a cached bundle (of
 * --engine-version when given), else one built from Debian's packages when this machine can.
 */
export async function prepareEngineSource(store: Store, engine: EngineOptions, report: (m: string) => void): Promise<EngineSource> {
  if (engine.install !== 'bundle') return {};
  const cacheDir = store.cacheDir;
  if (engine.bundleSha256 && !engine.bundle) {
    // A machine provisioned before: the exact bundle it got, from the cache.
    return { bundle: await resolveBundle({ sha256: engine.bundleSha256, cacheDir, report }) };
  }
  if (engine.bundle) {
    return { bundle: await resolveBundle({ source: engine.bundle, cacheDir, report, ...(engine.bundleSha256 ? { sha256: engine.bundleSha256 } : {}), ...(engine.version ? { version: engine.version } : {}) }) };
  }
  const cached = await listCachedBundles(cacheDir);
  const usable = cached.filter((b) => !engine.version || b.version === engine.version);
  if (usable.length > 0 || engine.version) {
    return { bundle: await resolveBundle({ cacheDir, report, ...(engine.version ? { version: engine.version } : {}) }) };
  }
  if (process.getuid?.() === 0 && (await fs.access('/usr/bin/apt-get').then(() => true, () => false))) {
    report('no engine bundle cached: building one from Debian packages');
    return { bundle: await buildBundleFromDebian({ cacheDir, report }) };
  }
  throw new TmachineError('no engine bundle is cached', {
    hint: 'run `tmachine engine bundle fetch VERSION` (or `engine bundle build --from-debian`), or pass --engine-bundle',
  });
}

export const MACHINE_TLS_FILES = { ca: 'ca.pem', cert: 'cert.pem', key: 'key.pem', serverCert: 'server.pem', serverKey: 'server-key.pem' } as const;

/** Every address and name the engine is reached by: the server certificate's SANs. */
export function machineSans(record: MachineRecord): string[] {
  return [...new Set([record.addresses.public, record.addresses.private, record.name].filter((s): s is string => Boolean(s)))];
}

async function readOr(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch(() => undefined);
}

/**
 * The store's CA and client certificate copied into the machine dir (DOCKER_CERT_PATH), and
 * a server certificate issued when missing, when the addresses moved, or when `force`.
 */
export async function ensureMachineCertificates(store: Store, record: MachineRecord, force = false): Promise<{ store: StoreCertificates; serverCertPem: string; serverKeyPem: string }> {
  const certs = await ensureStoreCertificates(store.certsDir);
  const dir = store.machineDir(record.name);
  const copies: Array<[string, string]> = [
    [MACHINE_TLS_FILES.ca, certs.caPem],
    [MACHINE_TLS_FILES.cert, certs.certPem],
    [MACHINE_TLS_FILES.key, certs.keyPem],
  ];
  for (const [file, content] of copies) {
    if ((await readOr(path.join(dir, file))) !== content) await store.writeSecretFile(path.join(dir, file), content);
  }
  let serverCertPem = await readOr(path.join(dir, MACHINE_TLS_FILES.serverCert));
  let serverKeyPem = await readOr(path.join(dir, MACHINE_TLS_FILES.serverKey));
  const sans = machineSans(record);
  if (force || !serverCertPem || !serverKeyPem || !certificateCovers(serverCertPem, sans) || !certificateMatchesCa(serverCertPem, certs.caPem)) {
    const issued = await issueServerCertificate({ ca: { certPem: certs.caPem, keyPem: certs.caKeyPem }, machineName: record.name, sans });
    serverCertPem = issued.certPem;
    serverKeyPem = issued.keyPem;
    await store.writeSecretFile(path.join(dir, MACHINE_TLS_FILES.serverKey), serverKeyPem);
    await store.writeSecretFile(path.join(dir, MACHINE_TLS_FILES.serverCert), serverCertPem);
  }
  return { store: certs, serverCertPem, serverKeyPem };
}

/**
 * The host provisioning talks to: the open connection, re-opened once if it is lost under
 * load (every step is idempotent, so repeating one is safe). The caller closes it.
 */
export function provisioningHost(store: Store, record: MachineRecord, connection: SshConnection): RemoteHost {
  return new ReconnectingHost(connection, () => connectMachine(store, record, { waitMs: 60_000 }));
}

/** Pins the bundle a machine got, so re-provisioning installs exactly that one again. */
export async function recordEngineSource(store: Store, name: string, source: EngineSource): Promise<MachineRecord> {
  return store.update(name, (r) => {
    if (!source.bundle) return;
    r.engine.bundleSha256 = source.bundle.sha256;
    if (source.bundle.version) r.engine.version = source.bundle.version;
    delete r.engine.bundle;
  });
}
