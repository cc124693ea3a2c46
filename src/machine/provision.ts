/**
 * Provisioning a machine: certificates from the store's CA, OS detection, then the
 * provision/ plan (engine install, daemon config, firewall, TLS) as one progress line per
 * step. Every step checks first, so provisioning twice changes nothing the second time.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { certificateCovers, certificateMatchesCa, ensureStoreCertificates, issueServerCertificate, type StoreCertificates } from '../certs/certs.js';
import { buildBundleFromDebian, listCachedBundles, resolveBundle, type ResolvedBundle } from '../engine/bundle.js';
import { engineClient } from '../engine/client.js';
import { TmachineError } from '../errors.js';
import { ReconnectingHost } from '../ssh/resilient.js';
import type { SshConnection } from '../ssh/connection.js';
import type { RemoteHost } from '../ssh/types.js';
import type { StepResult } from '../steps.js';
import type { EngineOptions, MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { runTasks } from '../ui/progress.js';
import { info } from '../ui/log.js';
import { connectMachine } from './connect.js';
import { stepTasks, type UiTask } from '../ui/progress.js';
import { detectHost } from '../../provision/os.js';
import { provisionPlan, type ProvisionContext } from '../../provision/engine-install.js';

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

export interface ProvisionOptions {
  dryRun?: boolean;
  /** Filled with one result per step, for "nothing to change" reports and tests. */
  results?: StepResult[];
  dataPathPort?: number;
  forceCerts?: boolean;
}

/**
 * The host provisioning talks to: the open connection, re-opened once if it is lost under
 * load (every step is idempotent, so repeating one is safe). The caller closes it.
 */
export function provisioningHost(store: Store, record: MachineRecord, connection: SshConnection): RemoteHost {
  return new ReconnectingHost(connection, () => connectMachine(store, record, { waitMs: 60_000 }));
}

/** The progress tasks that provision one machine over `host` (see provisioningHost). */
export async function provisionTasks(store: Store, record: MachineRecord, host: RemoteHost, source: EngineSource, options: ProvisionOptions = {}): Promise<UiTask[]> {
  const results = options.results ?? [];
  const certs = await ensureMachineCertificates(store, record, options.forceCerts);
  const registryCas = await Promise.all(
    record.engine.registryCAs.map(async (r) => ({ registry: r.registry, caPem: await fs.readFile(store.machineFile(record.name, r.caFile), 'utf8') })),
  );
  if (record.engine.install === 'bundle' && !source.bundle) throw new TmachineError(`no engine bundle given for ${record.name}`);
  const tls = { ca: certs.store.caPem, cert: certs.store.certPem, key: certs.store.keyPem };
  let context: ProvisionContext | undefined;
  return [
    {
      title: `${record.name}: detect the OS`,
      run: async (ui) => {
        const os = await detectHost(host);
        ui.setTitle(`${record.name}: ${os.prettyName} (${os.arch})`);
        context = {
          host,
          machineName: record.name,
          os,
          sshUser: record.ssh.user,
          engine: record.engine,
          ...(source.bundle ? { bundle: { path: source.bundle.path, sha256: source.bundle.sha256, version: source.bundle.version ?? '' } } : {}),
          certs: { caPem: certs.store.caPem, serverCertPem: certs.serverCertPem, serverKeyPem: certs.serverKeyPem },
          registryCas,
          ...(options.dataPathPort ? { dataPathPort: options.dataPathPort } : {}),
          sshPort: record.ssh.port,
          probe: async () => (await engineClient(record, tls, 10_000).version()).Version,
        };
        await ui.subtasks(stepTasks(record.name, context, provisionPlan(context), results, options.dryRun));
      },
    },
    {
      title: `${record.name}: record the engine`,
      run: async (ui) => {
        if (options.dryRun || !context?.probe) return ui.skip(`${record.name}: record the engine (dry run)`);
        const engineVersion = await context.probe();
        await store.update(record.name, (r) => {
          r.provisioned = { at: r.provisioned?.at && !results.some((x) => x.outcome === 'done') ? r.provisioned.at : new Date().toISOString(), engineVersion, os: context!.os.prettyName };
        });
        ui.setTitle(`${record.name}: engine ${engineVersion} answers on tcp://${record.addresses.public}:${record.engine.port} (TLS)`);
      },
    },
  ];
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

export interface ProvisionMachinesOptions extends Omit<ProvisionOptions, 'results'> {
  /** Replaces the machines' engine options first (upgrade). */
  engine?: (current: EngineOptions) => EngineOptions;
  silent?: boolean;
}

/**
 * provision / regenerate-certs / upgrade: provisions existing machines in parallel and
 * says per machine whether anything changed. Returns the step results per machine.
 */
export async function provisionMachines(store: Store, names: string[], options: ProvisionMachinesOptions = {}): Promise<Map<string, StepResult[]>> {
  const records = await Promise.all(names.map((n) => store.load(n)));
  for (const r of records) {
    if (r.creating) throw new TmachineError(`machine "${r.name}" was never finished`, { hint: `remove it with \`tmachine rm -f ${r.name}\`` });
  }
  const outcome = new Map<string, StepResult[]>();
  await runTasks(
    records.map((initial) => ({
      title: `${initial.name}: provision`,
      run: async (ui) => {
        let record = initial;
        if (options.engine) {
          const change = options.engine;
          record = await store.update(record.name, (r) => {
            r.engine = change(r.engine);
          });
        }
        const source = await prepareEngineSource(store, record.engine, (m) => ui.report(m));
        if (!options.dryRun) record = await recordEngineSource(store, record.name, source);
        const host = provisioningHost(store, record, await connectMachine(store, record));
        try {
          const results: StepResult[] = [];
          outcome.set(record.name, results);
          await ui.subtasks(await provisionTasks(store, record, host, source, { ...options, results }));
        } finally {
          host.close();
        }
      },
    })),
    { concurrent: true, continueOnError: true, silent: options.silent ?? false },
  );
  for (const [name, results] of outcome) {
    const ran = results.filter((r) => r.outcome === 'done' || r.outcome === 'would-run');
    if (ran.length === 0) info(`${name}: nothing to change (${results.length} steps already done)`);
    else info(`${name}: ${options.dryRun ? 'would run' : 'ran'} ${ran.map((r) => r.id).join(', ')}`);
  }
  return outcome;
}
