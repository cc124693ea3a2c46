/**
 * Swarm state backup and restore, as Docker's admin guide describes it: a consistent copy of
 * a manager's /var/lib/docker/swarm is taken with that manager's engine stopped (only while
 * the other managers keep quorum), plus the unlock key when autolock is on. Restore puts
 * that state on a machine and forces a new cluster of one manager from it: services,
 * networks, configs and secrets come back; `swarm recover` / `swarm join` grow it again.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import path from 'node:path';
import type Docker from 'dockerode';
import { z } from 'zod';
import { TmachineError } from '../../errors.js';
import { connectMachine } from '../../machine/connect.js';
import { resolveClusterName, withClusterLock } from '../cluster-record.js';
import { runPlan, type Phase, type PlanReport } from '../../plan/index.js';
import type { Store } from '../../store/store.js';
import { registerSecret } from '../../ui/redact.js';
import { shellQuote } from '../../../provision/os.js';
import { loadCluster, updateCluster, type ClusterRecord } from '../cluster-record.js';
import { healthyManager, memberOf, type Member } from '../engines.js';
import { initSwarm, listNodes, updateNode } from '../membership.js';
import { openCluster, setRecordSwarm } from './cluster.js';
import { engineAnswers, pollUntil, startEngine, stopEngine } from './host-engine.js';
import type { RunOptions } from './shutdown.js';

const asRoot = (script: string) => `if [ "$(id -u)" = 0 ]; then sh -c ${shellQuote(script)}; else sudo -n sh -c ${shellQuote(script)}; fi`;

export const backupMetaSchema = z.object({
  format: z.literal('tmachine-swarm-backup/1'),
  cluster: z.string(),
  takenAt: z.string(),
  from: z.string(),
  managers: z.number().int(),
  nodes: z.array(z.object({ name: z.string(), role: z.enum(['manager', 'worker']) })),
  autolock: z.boolean(),
  swarm: z.object({ advertise: z.enum(['private', 'public']), dataPathPort: z.number().int().optional() }),
});
export type BackupMeta = z.infer<typeof backupMetaSchema>;

async function engineCall<T>(docker: Docker, method: 'GET' | 'POST', apiPath: string, body?: object): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    docker.modem.dial({ path: apiPath, method, statusCodes: { 200: true, 204: true, 400: 'bad request', 500: 'server error', 503: 'node is not part of a swarm' }, ...(body ? { options: body } : {}) }, (error: unknown, data: unknown) =>
      error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(data as T),
    );
  });
}

async function unlockKey(docker: Docker): Promise<string> {
  const { UnlockKey } = await engineCall<{ UnlockKey?: string }>(docker, 'GET', '/swarm/unlockkey');
  if (!UnlockKey) throw new TmachineError('the swarm has autolock on but its manager returned no unlock key');
  registerSecret(UnlockKey);
  return UnlockKey;
}

/** An engine restarted on an autolocked manager waits for its key. */
async function unlockIfLocked(member: Member, key: string | undefined): Promise<void> {
  const info = await pollUntil(`${member.record.name}'s engine`, () => engineAnswers(member), 120_000);
  if (info.state !== 'locked') return;
  if (!key) throw new TmachineError(`${member.record.name} is locked and no unlock key is known`, { hint: `run \`tmachine ssh ${member.record.name} docker swarm unlock\`` });
  await engineCall(member.docker, 'POST', '/swarm/unlock', { UnlockKey: key });
}

interface BackupContext {
  store: Store;
  cluster: ClusterRecord;
  members: Member[];
  from: Member;
  output: string;
  meta: BackupMeta;
  key?: string;
  remote: string;
}

export async function backupCluster(store: Store, clusterName: string | undefined, options: RunOptions & { output?: string; force: boolean }): Promise<{ report: PlanReport; file: string; meta: BackupMeta }> {
  const lockName = await resolveClusterName(store, clusterName);
  return withClusterLock(store, lockName, 'swarm backup', undefined, async () => {
    const open = await openCluster(store, { ...(clusterName ? { cluster: clusterName } : {}) });
    const nodes = await listNodes(open.manager.docker);
    const managers = nodes.filter((n) => n.Spec.Role === 'manager');
    const reachable = managers.filter((n) => n.ManagerStatus?.Leader || n.ManagerStatus?.Reachability === 'reachable');
    const quorum = Math.floor(managers.length / 2) + 1;
    // A follower, so the copy never costs an election; the others must keep quorum without it.
    const follower = reachable.find((n) => !n.ManagerStatus?.Leader) ?? reachable[0]!;
    if (reachable.length - 1 < quorum && !options.force) {
      throw new TmachineError(`stopping a manager for a consistent copy would leave ${reachable.length - 1} of ${managers.length} managers, below the quorum of ${quorum}`, {
        hint: managers.length === 1 ? 'pass --force to stop the only manager for the copy (the control plane pauses meanwhile)' : 'bring the other managers back first, or pass --force',
      });
    }
    const fromMember = open.members.find((m) => m.record.swarm?.nodeId === follower.ID || m.record.name === follower.Description?.Hostname) ?? open.manager;
    const swarm = (await open.manager.docker.swarmInspect()) as { Spec?: { EncryptionConfig?: { AutoLockManagers?: boolean } } };
    const autolock = Boolean(swarm.Spec?.EncryptionConfig?.AutoLockManagers);
    const takenAt = new Date().toISOString();
    const output = path.resolve(options.output ?? `${open.cluster.name}-swarm-${takenAt.replace(/[:.]/g, '-')}.tgz`);
    const meta: BackupMeta = {
      format: 'tmachine-swarm-backup/1',
      cluster: open.cluster.name,
      takenAt,
      from: fromMember.record.name,
      managers: open.cluster.managers,
      nodes: open.cluster.nodes,
      autolock,
      swarm: { advertise: open.cluster.swarm.advertise, ...(open.cluster.swarm.dataPathPort ? { dataPathPort: open.cluster.swarm.dataPathPort } : {}) },
    };
    const context: BackupContext = { store, cluster: open.cluster, members: open.members, from: fromMember, output, meta, remote: `/tmp/tmachine-backup-${process.pid}` };
    if (autolock) context.key = await unlockKey(open.manager.docker);
    const host = fromMember.record.name;

    const phases: Phase<BackupContext>[] = [
      {
        id: 'stop-engine',
        title: 'stop the engine for a consistent copy (the other managers keep quorum)',
        scope: { kind: 'serial' },
        prepare: () => [host],
        run: (ctx) => stopEngine(ctx.store, ctx.from.record),
        // Whatever fails later, the manager must not stay down.
        cleanup: async (ctx) => {
          await startEngine(ctx.store, ctx.from.record);
          await unlockIfLocked(ctx.from, ctx.key);
        },
      },
      {
        id: 'copy',
        title: 'copy /var/lib/docker/swarm',
        scope: { kind: 'serial' },
        prepare: () => [host],
        run: async (ctx) => {
          const conn = await connectMachine(ctx.store, ctx.from.record);
          try {
            const stage = `${ctx.remote}.d`;
            const script = [
              'set -e',
              `rm -rf ${stage} && mkdir -m 0700 ${stage}`,
              `cp -a /var/lib/docker/swarm ${stage}/swarm`,
              `tar czf ${ctx.remote} -C ${stage} swarm`,
              `rm -rf ${stage}`,
              `chown "$SUDO_UID:$SUDO_GID" ${ctx.remote} 2>/dev/null || true`,
              `chmod 0600 ${ctx.remote}`,
            ].join('\n');
            await conn.run(asRoot(script), { what: 'copying the swarm state' });
          } finally {
            conn.close();
          }
        },
      },
      {
        id: 'start-engine',
        title: 'start the engine again and wait for it to rejoin',
        scope: { kind: 'serial' },
        prepare: () => [host],
        run: async (ctx, step) => {
          await startEngine(ctx.store, ctx.from.record);
          await unlockIfLocked(ctx.from, ctx.key);
          const id = ctx.from.record.swarm?.nodeId ?? '';
          await pollUntil(
            `${host} reachable as manager`,
            async () => {
              const leader = (await healthyManager(ctx.members.filter((m) => m !== ctx.from)))?.manager ?? ctx.from;
              const node = (await listNodes(leader.docker)).find((n) => n.ID === id || n.Description?.Hostname === host);
              return node?.ManagerStatus?.Reachability === 'reachable' || node?.ManagerStatus?.Leader ? true : undefined;
            },
            120_000,
            step.signal,
          );
        },
      },
      {
        id: 'download',
        title: `download the copy to ${output}`,
        scope: { kind: 'cluster' },
        run: async (ctx) => {
          const conn = await connectMachine(ctx.store, ctx.from.record);
          const state = `${ctx.output}.swarm.part`;
          try {
            await conn.download(ctx.remote, state);
            await conn.run(`rm -f ${ctx.remote}`).catch(() => undefined);
          } finally {
            conn.close();
          }
          await writeBackupFile(ctx.output, state, ctx.meta, ctx.key);
        },
      },
    ];
    const report = await runPlan({ title: 'swarm backup', hosts: [host], phases }, context, {
      ...(options.dryRun ? { dryRun: true } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.listener ? { listener: options.listener } : {}),
    });
    return { report, file: output, meta };
  });
}

/**
 * The backup file: a tar holding meta.json, swarm.tgz (the state) and, with autolock, the
 * unlock key; mode 0600, since the state holds the swarm's keys and secrets.
 */
async function writeBackupFile(output: string, stateTgz: string, meta: BackupMeta, key: string | undefined): Promise<void> {
  const pack = tarStream.pack();
  const partial = `${output}.part`;
  const written = pipeline(pack, createWriteStream(partial, { mode: 0o600 }));
  const entry = (name: string, content: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, mode: 0o600, mtime: new Date(meta.takenAt) }, content, (error) => (error ? reject(error) : resolve())));
  try {
    await entry('meta.json', Buffer.from(JSON.stringify(meta, null, 2) + '\n'));
    await entry('swarm.tgz', await fs.readFile(stateTgz));
    if (key) await entry('unlock-key', Buffer.from(key + '\n'));
    pack.finalize();
    await written;
    await fs.chmod(partial, 0o600);
    await fs.rename(partial, output);
  } catch (error) {
    pack.destroy();
    await fs.rm(partial, { force: true });
    throw error;
  } finally {
    await fs.rm(stateTgz, { force: true });
  }
}

async function readBackupFile(file: string): Promise<{ dir: string; meta: BackupMeta; key?: string }> {
  await fs.access(file).catch(() => {
    throw new TmachineError(`backup file ${file} does not exist`);
  });
  const dir = await fs.mkdtemp(path.join(path.dirname(path.resolve(file)), '.tmachine-restore-'));
  await fs.chmod(dir, 0o700);
  try {
    const wanted = new Set(['meta.json', 'swarm.tgz', 'unlock-key']);
    const extract = tarStream.extract();
    const done = pipeline(createReadStream(file), extract);
    for await (const entry of extract) {
      const name = entry.header.name;
      if (entry.header.type !== 'file' || !wanted.has(name)) {
        entry.resume();
        continue;
      }
      await pipeline(entry, createWriteStream(path.join(dir, name), { mode: 0o600 }));
    }
    await done;
    const meta = backupMetaSchema.parse(JSON.parse(await fs.readFile(path.join(dir, 'meta.json'), 'utf8')));
    await fs.access(path.join(dir, 'swarm.tgz'));
    const key = (await fs.readFile(path.join(dir, 'unlock-key'), 'utf8').catch(() => undefined))?.trim();
    if (key) registerSecret(key);
    return { dir, meta, ...(key ? { key } : {}) };
  } catch (error) {
    await fs.rm(dir, { recursive: true, force: true });
    if (error instanceof TmachineError) throw error;
    throw new TmachineError(`${file} is not a tmachine swarm backup: ${(error as Error).message.split('\n')[0]}`, { hint: 'pass a file written by `tmachine swarm backup`' });
  }
}

export interface RestoreResult {
  cluster: string;
  machine: string;
  services: string[];
  removedNodes: number;
}

/** `swarm restore FILE --to NAME`: the backed-up swarm, forced into a new cluster of one manager on NAME. */
export async function restoreCluster(store: Store, file: string, machine: string, options: { cluster?: string; force: boolean }): Promise<RestoreResult> {
  const backup = await readBackupFile(file);
  try {
    const name = options.cluster ?? backup.meta.cluster;
    const existing = await loadCluster(store, name);
    if (existing && !options.force) {
      throw new TmachineError(`cluster "${name}" already exists in this store`, { hint: `restore under another name with --cluster NAME, or \`tmachine swarm down --cluster ${name}\` first` });
    }
    const record = await store.load(machine);
    if (!record.provisioned) throw new TmachineError(`machine "${machine}" has no engine provisioned`, { hint: `run \`tmachine provision ${machine}\`` });
    const member = await memberOf(store, record);
    const info = await engineAnswers(member, 10_000);
    if (!info) throw new TmachineError(`the engine of ${machine} does not answer`, { hint: `start it: \`tmachine start ${machine}\`` });
    if (info.state !== 'inactive' && !options.force) {
      throw new TmachineError(`${machine} is already in a swarm`, { hint: 'restore onto a machine outside any swarm, or pass --force to replace its swarm state' });
    }
    const conn = await connectMachine(store, record);
    const remote = `/tmp/tmachine-restore-${process.pid}.tgz`;
    try {
      await conn.upload(path.join(backup.dir, 'swarm.tgz'), remote, { mode: 0o600 });
      await stopEngine(store, record);
      const script = ['set -e', 'rm -rf /var/lib/docker/swarm', `tar xzf ${remote} -C /var/lib/docker`, `rm -f ${remote}`].join('\n');
      await conn.run(asRoot(script), { what: 'putting the swarm state in place' });
    } finally {
      conn.close();
    }
    await startEngine(store, record);
    await unlockIfLocked(member, backup.key);
    // The state names the old managers; a new cluster of one from it keeps everything else.
    await initSwarm(member, { advertise: backup.meta.swarm.advertise, forceNewCluster: true, ...(backup.meta.swarm.dataPathPort ? { dataPathPort: backup.meta.swarm.dataPathPort } : {}) });
    const leader = await pollUntil(`${machine} leading the restored swarm`, async () => (await healthyManager([member]))?.manager, 120_000);
    const self = (await engineAnswers(leader))!.nodeId;
    let removedNodes = 0;
    for (const n of await listNodes(leader.docker)) {
      if (n.ID === self) continue;
      // Every other node entry belongs to the old hosts; new members join with new IDs.
      if (n.Spec.Role === 'manager') await updateNode(leader.docker, n.ID, (s) => ({ ...s, Role: 'worker' })).catch(() => undefined);
      await leader.docker.getNode(n.ID).remove({ force: true }).then(() => removedNodes++).catch(() => undefined);
    }
    const cluster: ClusterRecord = {
      name,
      createdAt: new Date().toISOString(),
      managers: backup.meta.managers,
      nodes: [{ name: machine, role: 'manager' }],
      swarm: { advertise: backup.meta.swarm.advertise, encryptedOverlay: false, ...(backup.meta.swarm.dataPathPort ? { dataPathPort: backup.meta.swarm.dataPathPort } : {}) },
      stacks: [],
    };
    await updateCluster(store, cluster.name, () => cluster);
    await setRecordSwarm(store, machine, { cluster: name, role: 'manager', nodeId: self });
    const services = ((await leader.docker.listServices()) as Array<{ Spec: { Name: string } }>).map((s) => s.Spec.Name).sort();
    return { cluster: name, machine, services, removedNodes };
  } finally {
    await fs.rm(backup.dir, { recursive: true, force: true });
  }
}

