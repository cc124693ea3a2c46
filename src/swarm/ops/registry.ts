/**
 * Private registries: their CAs, trusted on every node of a cluster (and on nodes that join
 * later), and their credentials, kept in the store (0600, never printed) and handed to a
 * manager's docker CLI over stdin only for the deploy that needs them.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { TmachineError } from '../../errors.js';
import { connectMachine } from '../../machine/connect.js';
import type { MachineRecord } from '../../store/machine-record.js';
import type { Store } from '../../store/store.js';
import { registerSecret } from '../../ui/redact.js';
import { shellQuote } from '../../../provision/os.js';
import { requireCluster, stacksDir } from '../cluster-record.js';
import { engineAnswers } from './host-engine.js';
import { clusterMembers } from '../engines.js';

/** HOST or HOST:PORT, as the engine's /etc/docker/certs.d directory names a registry. */
const REGISTRY = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?$/;

export function checkRegistryName(registry: string, flag = 'registry'): void {
  if (!REGISTRY.test(registry)) throw new TmachineError(`${flag} "${registry}" is not HOST or HOST:PORT`, { hint: 'for example registry.example.org:5000' });
}

/** The file name a registry's CA has in a machine's directory (as `create --engine-registry-ca` names it). */
export function machineCaFileName(registry: string): string {
  return `registry-ca-${registry.replace(/[^a-zA-Z0-9.-]/g, '_')}.crt`;
}

function clusterCaDir(store: Store, cluster: string): string {
  return path.join(path.dirname(stacksDir(store, cluster)), 'registry-cas');
}

/** The registry CAs of a cluster: what every member, and every machine that joins later, must trust. */
export async function clusterRegistryCAs(store: Store, cluster: string): Promise<Array<{ registry: string; caFile: string }>> {
  const dir = clusterCaDir(store, cluster);
  const files = await fs.readdir(dir).catch(() => [] as string[]);
  return files
    .filter((f) => f.endsWith('.crt'))
    .map((f) => ({ registry: decodeURIComponent(f.slice(0, -4)), caFile: path.join(dir, f) }))
    .sort((a, b) => a.registry.localeCompare(b.registry));
}

async function readCaPem(file: string): Promise<string> {
  const pem = await fs.readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new TmachineError(`CA file ${file} cannot be read (${error.code ?? error.message})`);
  });
  try {
    const cert = new X509Certificate(pem);
    if (!cert.ca) throw new TmachineError(`${file} is a certificate but not a CA (basicConstraints CA:FALSE)`, { hint: 'pass the CA that signed the registry\u2019s certificate' });
  } catch (error) {
    if (error instanceof TmachineError) throw error;
    throw new TmachineError(`${file} is not a PEM certificate`, { hint: 'pass the registry CA in PEM form (-----BEGIN CERTIFICATE-----)' });
  }
  return pem;
}

/** Puts the CA where the engine looks it up on every pull (no engine restart needed). */
async function installCaOnHost(store: Store, record: MachineRecord, registry: string, pem: string): Promise<void> {
  const conn = await connectMachine(store, record);
  try {
    const dir = `/etc/docker/certs.d/${registry}`;
    const staged = `/tmp/tmachine-registry-ca-${process.pid}.crt`;
    await conn.writeFile(staged, pem, { mode: 0o644 });
    const script = `mkdir -p ${shellQuote(dir)} && install -m 0644 ${staged} ${shellQuote(`${dir}/ca.crt`)}; rc=$?; rm -f ${staged}; exit $rc`;
    await conn.run(`if [ "$(id -u)" = 0 ]; then sh -c ${shellQuote(script)}; else sudo -n sh -c ${shellQuote(script)}; fi`, { what: 'installing the registry CA' });
  } finally {
    conn.close();
  }
}

/** Records the CA in the machine (so re-provisioning keeps it) and installs it on the host. */
export async function trustRegistryOn(store: Store, name: string, registry: string, pem: string): Promise<void> {
  const copy = machineCaFileName(registry);
  await store.writeSecretFile(store.machineFile(name, copy), pem);
  const record = await store.update(name, (r) => {
    r.engine.registryCAs = [...r.engine.registryCAs.filter((c) => c.registry !== registry), { registry, caFile: copy }];
  });
  await installCaOnHost(store, record, registry, pem);
}

/** Installs every CA of the cluster on a machine that joins it. */
export async function trustClusterRegistries(store: Store, cluster: string, name: string): Promise<void> {
  for (const ca of await clusterRegistryCAs(store, cluster)) await trustRegistryOn(store, name, ca.registry, await fs.readFile(ca.caFile, 'utf8'));
}

export interface RegistryCaResult {
  cluster: string;
  registry: string;
  installed: string[];
  /** Members that did not answer; they get the CA on their next `swarm join`/provision. */
  pending: string[];
}

/** `swarm registry-ca add HOST:PORT FILE`: the CA on every member, and kept for members to come. */
export async function addRegistryCa(store: Store, registry: string, file: string, clusterName?: string): Promise<RegistryCaResult> {
  checkRegistryName(registry, 'HOST:PORT');
  const pem = await readCaPem(file);
  const cluster = await requireCluster(store, clusterName);
  const dir = clusterCaDir(store, cluster.name);
  await store.writeSecretFile(path.join(dir, `${encodeURIComponent(registry)}.crt`), pem);
  const members = await clusterMembers(store, cluster, 10_000);
  const installed: string[] = [];
  const pending: string[] = [];
  await Promise.all(
    members.map(async (m) => {
      // The record is updated even for a member that is down, so its next provisioning installs it.
      if (!(await engineAnswers(m))) {
        await store.writeSecretFile(store.machineFile(m.record.name, machineCaFileName(registry)), pem);
        await store.update(m.record.name, (r) => {
          r.engine.registryCAs = [...r.engine.registryCAs.filter((c) => c.registry !== registry), { registry, caFile: machineCaFileName(registry) }];
        });
        pending.push(m.record.name);
        return;
      }
      await trustRegistryOn(store, m.record.name, registry, pem);
      installed.push(m.record.name);
    }),
  );
  return { cluster: cluster.name, registry, installed: installed.sort(), pending: pending.sort() };
}

// Credentials ---------------------------------------------------------------------------

const credentialsSchema = z.record(z.string(), z.object({ username: z.string(), password: z.string(), savedAt: z.string() }));
type Credentials = z.infer<typeof credentialsSchema>;

function credentialsFile(store: Store): string {
  return path.join(store.root, 'registries', 'credentials.json');
}

async function readCredentials(store: Store): Promise<Credentials> {
  const text = await fs.readFile(credentialsFile(store), 'utf8').catch(() => undefined);
  if (text === undefined) return {};
  const parsed = credentialsSchema.parse(JSON.parse(text));
  for (const c of Object.values(parsed)) registerSecret(c.password);
  return parsed;
}

export async function saveRegistryLogin(store: Store, registry: string, username: string, password: string): Promise<void> {
  checkRegistryName(registry);
  registerSecret(password);
  if (!username) throw new TmachineError('registry login needs a user name', { hint: 'pass -u USER' });
  if (!password) throw new TmachineError('registry login got an empty password', { hint: 'pipe it in: `printf %s "$PASSWORD" | tmachine registry login HOST -u USER --password-stdin`' });
  const all = await readCredentials(store);
  all[registry] = { username, password, savedAt: new Date().toISOString() };
  await store.writeSecretFile(credentialsFile(store), JSON.stringify(all, null, 2) + '\n');
}

export async function removeRegistryLogin(store: Store, registry: string): Promise<boolean> {
  const all = await readCredentials(store);
  if (!all[registry]) return false;
  delete all[registry];
  await store.writeSecretFile(credentialsFile(store), JSON.stringify(all, null, 2) + '\n');
  return true;
}

export interface RegistryLogin {
  registry: string;
  username: string;
  password: string;
}

export async function registryLogin(store: Store, registry: string): Promise<RegistryLogin | undefined> {
  const c = (await readCredentials(store))[registry];
  return c ? { registry, username: c.username, password: c.password } : undefined;
}

/** The registry part of an image reference ("reg.example:5000/app:1" -> "reg.example:5000"), else undefined (Docker Hub). */
export function imageRegistry(image: string): string | undefined {
  const slash = image.indexOf('/');
  if (slash < 0) return undefined;
  const first = image.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : undefined;
}

/** Logs the manager's docker CLI in (password over stdin, never on a command line), runs work, logs out. */
export async function withRegistryLogins<T>(store: Store, manager: MachineRecord, logins: RegistryLogin[], work: () => Promise<T>): Promise<T> {
  if (logins.length === 0) return work();
  const conn = await connectMachine(store, manager);
  try {
    for (const l of logins) {
      registerSecret(l.password);
      await conn.run(`docker login ${shellQuote(l.registry)} -u ${shellQuote(l.username)} --password-stdin`, { stdin: l.password, what: `docker login ${l.registry}`, secrets: [l.password] });
    }
    return await work();
  } finally {
    for (const l of logins) await conn.run(`docker logout ${shellQuote(l.registry)}`, { what: 'docker logout' }).catch(() => undefined);
    conn.close();
  }
}

/**
 * Checks the credentials the way `docker login` does, from a manager of the cluster (which
 * trusts the registry's CA), then keeps them. Without a cluster they are only kept.
 */
export async function loginToRegistry(store: Store, login: RegistryLogin, clusterName?: string): Promise<{ verifiedOn?: string }> {
  checkRegistryName(login.registry);
  registerSecret(login.password);
  let verifiedOn: string | undefined;
  const names = await listClusterNames(store);
  if (clusterName || names.length === 1) {
    const { openCluster } = await import('./cluster.js');
    const open = await openCluster(store, { cluster: clusterName ?? names[0]! });
    await withRegistryLogins(store, open.manager.record, [login], async () => undefined);
    verifiedOn = open.manager.record.name;
  }
  await saveRegistryLogin(store, login.registry, login.username, login.password);
  return verifiedOn ? { verifiedOn } : {};
}

async function listClusterNames(store: Store): Promise<string[]> {
  const { listClusters } = await import('../cluster-record.js');
  return listClusters(store);
}
