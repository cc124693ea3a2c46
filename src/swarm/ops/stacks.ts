/** Stacks handed to a manager's docker CLI, and images loaded onto every node. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { TmachineError } from '../../errors.js';
import { connectMachine } from '../../machine/connect.js';
import type { MachineRecord } from '../../store/machine-record.js';
import type { Store } from '../../store/store.js';
import { shellQuote } from '../../../provision/os.js';
import { requireCluster, stacksDir, updateCluster } from '../cluster-record.js';
import { stackMtuWarnings } from '../mtu.js';
import { checkBindSources, stackBinds } from './bind-check.js';
import { checkCidr, openCloudPorts, openPublishedPorts, publishedPorts } from './ports.js';
import { info, warn } from '../../ui/log.js';
import { onManager, openCluster } from './cluster.js';
import { imageRegistry, registryLogin, withRegistryLogins, type RegistryLogin } from './registry.js';
import { parse as parseYaml } from 'yaml';

/** The images a stack file's services name. */
export function parseStack(text: string, file: string): unknown {
  try {
    return parseYaml(text);
  } catch (error) {
    throw new TmachineError(`stack file ${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
}

export function stackImages(doc: unknown): string[] {
  const services = (doc as { services?: Record<string, { image?: unknown }> } | null)?.services ?? {};
  return Object.values(services)
    .map((svc) => svc?.image)
    .filter((i): i is string => typeof i === 'string');
}

export interface DeployOptions {
  withRegistryAuth?: boolean;
  /** Open the stack's published ports in the host and the cloud firewall, from sourceCidr only. */
  openPorts?: boolean;
  sourceCidr?: string;
  prune?: boolean;
}

export async function deployStack(store: Store, file: string, stack: string, clusterName: string | undefined, options: DeployOptions = {}): Promise<string> {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(stack)) throw new TmachineError(`invalid stack name "${stack}"`);
  await fs.access(file).catch(() => {
    throw new TmachineError(`stack file ${file} does not exist`);
  });
  const content = await fs.readFile(file);
  const doc = parseStack(content.toString('utf8'), file);
  const images = stackImages(doc);
  const open = await openCluster(store, { ...(clusterName ? { cluster: clusterName } : {}) });
  await checkBindSources(store, open.manager, open.members, stackBinds(doc), stack);
  // Nodes whose NIC MTU is below 1500 (GCE): an overlay without a fitting MTU drops big packets silently.
  if (open.cluster.swarm.mtu !== undefined) for (const line of stackMtuWarnings(content.toString('utf8'), stack, open.cluster.swarm.mtu)) warn(line);
  const ports = publishedPorts(doc);
  if (options.openPorts) {
    if (!options.sourceCidr) throw new TmachineError('--open-ports needs --source-cidr', { hint: 'name who may reach the ports, for example --source-cidr 203.0.113.0/24' });
    checkCidr(options.sourceCidr);
    await openPublishedPorts(store, open.members, ports, options.sourceCidr);
    for (const line of await openCloudPorts(store, open.members, ports, options.sourceCidr)) info(`cloud firewall: ${line}`);
  } else {
    for (const p of ports) warn(`port ${p.port}/${p.protocol} of service ${p.service} is published but tmachine did not open it in the host or cloud firewall (pass --open-ports --source-cidr CIDR)`);
  }
  const kept = path.join(stacksDir(store, open.cluster.name), `${stack}.yml`);
  await store.ensureDir(path.dirname(kept));
  // A deploy that fails leaves the store as it was: the file of the stack deployed before, or none.
  const previous = await fs.readFile(kept).catch(() => undefined);
  await store.writeSecretFile(kept, content);
  const restore = async () => (previous ? store.writeSecretFile(kept, previous) : fs.rm(kept, { force: true }));
  // Images from a registry tmachine holds credentials for: the manager logs in (password over
  // stdin) and passes the credentials to the agents that pull.
  const registries = [...new Set(images.map(imageRegistry).filter((r): r is string => r !== undefined))];
  const logins = (await Promise.all(registries.map((r) => registryLogin(store, r)))).filter((l): l is RegistryLogin => l !== undefined);
  const withRegistryAuth = options.withRegistryAuth || logins.length > 0;
  // Images were resolved (or loaded) beforehand; asking a registry from here is never wanted offline.
  const flags = ['--resolve-image never', withRegistryAuth ? '--with-registry-auth' : '', options.prune ? '--prune' : ''].filter(Boolean).join(' ');
  let output: string;
  try {
    output = await withRegistryLogins(store, open.manager.record, logins, () =>
      onManager(store, open.manager, async (run, upload) => {
        const remote = `/tmp/tmachine-stack-${stack}-${process.pid}.yml`;
        await upload(kept, remote);
        try {
          return await run(`docker stack deploy ${flags} -c ${shellQuote(remote)} ${shellQuote(stack)}`);
        } finally {
          await run(`rm -f ${shellQuote(remote)}`).catch(() => undefined);
        }
      }),
    );
  } catch (error) {
    await restore();
    throw error;
  }
  const deployed = { name: stack, file: kept, deployedAt: new Date().toISOString() };
  await updateCluster(store, open.cluster.name, (current) => ({ ...(current ?? open.cluster), stacks: [...(current ?? open.cluster).stacks.filter((s) => s.name !== stack), deployed] }));
  return output;
}

export async function removeStack(store: Store, stack: string, clusterName?: string): Promise<void> {
  const open = await openCluster(store, { ...(clusterName ? { cluster: clusterName } : {}) });
  await onManager(store, open.manager, (run) => run(`docker stack rm ${shellQuote(stack)}`));
  await updateCluster(store, open.cluster.name, (current) => ({ ...(current ?? open.cluster), stacks: (current ?? open.cluster).stacks.filter((s) => s.name !== stack) }));
}

/** Loads an image tarball (`docker save` output) into the engine of every member. */
export async function loadImage(store: Store, tarball: string, clusterName?: string, machines?: string[]): Promise<string[]> {
  await fs.access(tarball).catch(() => {
    throw new TmachineError(`image tarball ${tarball} does not exist`);
  });
  let targets: MachineRecord[];
  if (machines && machines.length > 0) targets = await Promise.all(machines.map((m) => store.load(m)));
  else {
    const cluster = await requireCluster(store, clusterName);
    targets = await Promise.all(cluster.nodes.map((n) => store.load(n.name)));
  }
  const loaded: string[] = [];
  await Promise.all(
    targets.map(async (record) => {
      const conn = await connectMachine(store, record);
      try {
        const remote = `/tmp/tmachine-image-${process.pid}.tar`;
        await conn.upload(tarball, remote);
        const out = await conn.run(`docker load -i ${remote}; rc=$?; rm -f ${remote}; exit $rc`, { what: 'docker load' });
        loaded.push(`${record.name}: ${out.trim().split('\n').pop()}`);
      } finally {
        conn.close();
      }
    }),
  );
  return loaded.sort();
}

