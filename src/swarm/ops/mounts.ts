/**
 * Shared storage on every node (SPEC §3 `mounts:`), as systemd mount units: they mount at
 * boot, order after the network for NFS, and are written only when their content changes,
 * so applying them again changes nothing. The mounts a cluster wants are kept beside its
 * record, so nodes that join later get them too.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { z } from 'zod';
import { TmachineError } from '../../errors.js';
import { connectMachine } from '../../machine/connect.js';
import { resolveClusterName, withClusterLock } from '../cluster-record.js';
import { runPlan, type PlanReport } from '../../plan/index.js';
import type { MachineRecord } from '../../store/machine-record.js';
import type { Store } from '../../store/store.js';
import { shellQuote } from '../../../provision/os.js';
import { requireCluster, stacksDir } from '../cluster-record.js';
import type { RunOptions } from './shutdown.js';

export const mountSchema = z.object({
  source: z.string(),
  target: z.string().regex(/^\/\S*$/),
  /** Filesystem type; "nfs" for server:/path sources. */
  type: z.string().regex(/^[a-z0-9.]+$/),
  options: z.string().optional(),
});
export type ClusterMount = z.infer<typeof mountSchema>;

/** A mount as the cluster file writes it (server:/path is NFS) or as given with --type. */
export function clusterMount(source: string, target: string, options: { type?: string; options?: string } = {}): ClusterMount {
  if (!/^\/\S*$/.test(target) || target.split('/').includes('..')) throw new TmachineError(`mount target "${target}" is not an absolute path`, { hint: 'for example /project' });
  const nfs = /^[^\s:/]+:\/\S*$/.test(source);
  const type = options.type ?? (nfs ? 'nfs' : undefined);
  if (!type) throw new TmachineError(`mount source "${source}" is not server:/path`, { hint: 'give an NFS share as server:/export/path, or name the filesystem with --type' });
  if (/\s/.test(source) || (options.options && /\s/.test(options.options))) throw new TmachineError('mount source and options cannot contain spaces');
  return mountSchema.parse({ source, target, type, ...(options.options ? { options: options.options } : {}) });
}

/** systemd's name for the unit that mounts `target` (`systemd-escape --path --suffix=mount`). */
export function mountUnitName(target: string): string {
  const trimmed = target.replace(/\/+/g, '/').replace(/^\/|\/$/g, '');
  if (trimmed === '') return '-.mount';
  // '/' becomes '-'; anything else outside [A-Za-z0-9:_.] (and a leading '.') becomes \xNN.
  const escaped = [...trimmed]
    .map((c, i) => (c === '/' ? '-' : /[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0) ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))
    .join('');
  return `${escaped}.mount`;
}

const NETWORK_TYPES = new Set(['nfs', 'nfs4', 'cifs', 'smb3', 'glusterfs', 'ceph']);

export function renderMountUnit(mount: ClusterMount): string {
  const network = NETWORK_TYPES.has(mount.type);
  const options = [mount.options, network ? '_netdev' : undefined].filter(Boolean).join(',');
  return [
    '# Written by tmachine: shared storage of the swarm (cluster mounts).',
    '[Unit]',
    `Description=tmachine mount of ${mount.source} on ${mount.target}`,
    ...(network ? ['Wants=network-online.target', 'After=network-online.target', 'Before=docker.service'] : ['Before=docker.service']),
    '',
    '[Mount]',
    `What=${mount.source}`,
    `Where=${mount.target}`,
    `Type=${mount.type}`,
    ...(options ? [`Options=${options}`] : []),
    ...(network ? ['TimeoutSec=60'] : []),
    '',
    '[Install]',
    `WantedBy=${network ? 'remote-fs.target' : 'local-fs.target'}`,
    '',
  ].join('\n');
}

const asRoot = (script: string) => `if [ "$(id -u)" = 0 ]; then sh -c ${shellQuote(script)}; else sudo -n sh -c ${shellQuote(script)}; fi`;

function unitPath(mount: ClusterMount): string {
  return `/etc/systemd/system/${mountUnitName(mount.target)}`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** True when the unit on the host is this one, enabled, and the target is mounted. */
function holdsScript(mount: ClusterMount): string {
  const unit = mountUnitName(mount.target);
  return `[ "$(sha256sum < ${shellQuote(unitPath(mount))} 2>/dev/null | cut -c1-64)" = ${sha256(renderMountUnit(mount))} ] && systemctl is-enabled --quiet ${shellQuote(unit)} && findmnt -M ${shellQuote(mount.target)} >/dev/null`;
}

/** The NFS client, from the distribution's packages, when an NFS mount needs it and it is missing. */
function nfsClientScript(): string {
  return [
    'command -v mount.nfs >/dev/null 2>&1 && exit 0',
    'if command -v apt-get >/dev/null 2>&1; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q nfs-common >/dev/null',
    'elif command -v dnf >/dev/null 2>&1; then dnf install -y -q nfs-utils',
    'elif command -v zypper >/dev/null 2>&1; then zypper -n -q install nfs-client',
    'elif command -v apk >/dev/null 2>&1; then apk add -q nfs-utils',
    'else echo "no package manager to install the NFS client" >&2; exit 1; fi',
  ].join('\n');
}

export async function mountHolds(store: Store, record: MachineRecord, mount: ClusterMount): Promise<boolean> {
  const conn = await connectMachine(store, record);
  try {
    return (await conn.exec(asRoot(holdsScript(mount)))).code === 0;
  } finally {
    conn.close();
  }
}

export async function applyMount(store: Store, record: MachineRecord, mount: ClusterMount): Promise<void> {
  const conn = await connectMachine(store, record);
  try {
    if (mount.type.startsWith('nfs')) await conn.run(asRoot(nfsClientScript()), { what: 'installing the NFS client' });
    // Unit names hold backslashes (\\x2d); the staged copy gets a plain name.
    const staged = `/tmp/tmachine-mount-${sha256(mount.target).slice(0, 12)}-${process.pid}`;
    await conn.writeFile(staged, renderMountUnit(mount), { mode: 0o644 });
    const unit = shellQuote(mountUnitName(mount.target));
    const script = [
      'set -e',
      `changed=0; cmp -s ${staged} ${shellQuote(unitPath(mount))} || changed=1`,
      `install -m 0644 ${staged} ${shellQuote(unitPath(mount))}; rm -f ${staged}`,
      `mkdir -p ${shellQuote(mount.target)}`,
      'systemctl daemon-reload',
      `systemctl enable --quiet ${unit}`,
      `if [ $changed = 1 ]; then systemctl restart ${unit}; else systemctl start ${unit}; fi`,
    ].join('\n');
    await conn.run(asRoot(script), { what: `mounting ${mount.target}` });
  } finally {
    conn.close();
  }
}

function mountsFile(store: Store, cluster: string): string {
  return path.join(path.dirname(stacksDir(store, cluster)), 'mounts.json');
}

export async function clusterMounts(store: Store, cluster: string): Promise<ClusterMount[]> {
  const text = await fs.readFile(mountsFile(store, cluster), 'utf8').catch(() => undefined);
  return text === undefined ? [] : z.array(mountSchema).parse(JSON.parse(text));
}

async function saveClusterMounts(store: Store, cluster: string, mounts: ClusterMount[]): Promise<void> {
  await store.ensureDir(path.dirname(mountsFile(store, cluster)));
  await writeFileAtomic(mountsFile(store, cluster), JSON.stringify(mounts, null, 2) + '\n', { mode: 0o600 });
}

/** The cluster's mounts on a machine that joins it. */
export async function applyClusterMounts(store: Store, cluster: string, name: string): Promise<void> {
  const record = await store.load(name);
  for (const m of await clusterMounts(store, cluster)) if (!(await mountHolds(store, record, m))) await applyMount(store, record, m);
}

/** `swarm mount SOURCE TARGET`: kept for the cluster and mounted on every member (a plan, --dry-run). */
export async function mountOnCluster(store: Store, mount: ClusterMount, clusterName: string | undefined, options: RunOptions): Promise<{ report: PlanReport; cluster: string }> {
  const lockName = await resolveClusterName(store, clusterName);
  return withClusterLock(store, lockName, 'swarm mount', undefined, async () => {
    const cluster = await requireCluster(store, clusterName);
    const hosts: string[] = [];
    for (const n of cluster.nodes) if (await store.exists(n.name)) hosts.push(n.name);
    const context = { store, mount };
    const report = await runPlan(
      {
        title: 'swarm mount',
        hosts,
        phases: [
          {
            id: 'mount',
            title: `mount ${mount.source} on ${mount.target} (${mountUnitName(mount.target)})`,
            scope: { kind: 'parallel' },
            needsRun: async (ctx, run) => !(await mountHolds(ctx.store, await ctx.store.load(run.host!), ctx.mount)),
            run: async (ctx, run) => applyMount(ctx.store, await ctx.store.load(run.host!), ctx.mount),
          },
        ],
      },
      context,
      { ...(options.dryRun ? { dryRun: true } : {}), ...(options.signal ? { signal: options.signal } : {}), ...(options.listener ? { listener: options.listener } : {}) },
    );
    if (!options.dryRun) {
      const kept = (await clusterMounts(store, cluster.name)).filter((m) => m.target !== mount.target);
      await saveClusterMounts(store, cluster.name, [...kept, mount]);
    }
    return { report, cluster: cluster.name };
  });
}
