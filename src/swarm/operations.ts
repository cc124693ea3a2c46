/**
 * Day-to-day swarm operations behind the `swarm` commands: membership, roles, availability,
 * labels, tokens, stacks and recovery. Control-plane calls go to a healthy manager through
 * the engine API; stack files go to a manager's own docker CLI over SSH.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { TmachineError } from '../errors.js';
import { connectMachine } from '../machine/connect.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { info, warn } from '../ui/log.js';
import { registerSecret } from '../ui/redact.js';
import { shellQuote } from '../../provision/os.js';
import { removeCluster, requireCluster, saveCluster, stacksDir, type ClusterRecord } from './cluster-record.js';
import { clusterMembers, engineMessage, joinTokens, memberOf, swarmInfo, type Member } from './engines.js';
import { withDeadline } from '../async.js';
import { initSwarm, joinSwarm, leaveSwarm, listNodes, updateNode, waitNodeReady, type NodeSpec } from './membership.js';
import { requireHealthyManager } from './status.js';

export interface OpenCluster {
  cluster: ClusterRecord;
  members: Member[];
  manager: Member;
}

/** The cluster a machine belongs to (or --cluster), with a manager that has control. */
export async function openCluster(store: Store, options: { cluster?: string; machine?: string }): Promise<OpenCluster> {
  let name = options.cluster;
  if (!name && options.machine) name = (await store.load(options.machine)).swarm?.cluster;
  const cluster = await requireCluster(store, name);
  const members = await clusterMembers(store, cluster);
  return { cluster, members, manager: await requireHealthyManager(cluster, members) };
}

function memberNamed(open: OpenCluster, name: string): Member {
  const m = open.members.find((x) => x.record.name === name);
  if (!m) throw new TmachineError(`machine "${name}" is not a member of cluster "${open.cluster.name}"`, { hint: `add it with \`tmachine swarm join ${name} --role worker\`` });
  return m;
}

async function nodeIdOf(m: Member): Promise<string> {
  if (m.record.swarm?.nodeId) return m.record.swarm.nodeId;
  const id = (await swarmInfo(m.docker)).nodeId;
  if (!id) throw new TmachineError(`${m.record.name} is not in a swarm`);
  return id;
}

async function setRecordSwarm(store: Store, name: string, swarm: MachineRecord['swarm'] | undefined): Promise<void> {
  await store.update(name, (r) => {
    if (swarm) r.swarm = swarm;
    else delete r.swarm;
  });
}

/** Reachable managers after a change, against the quorum the remaining managers need. */
async function checkQuorumAfter(open: OpenCluster, losing: string, force: boolean): Promise<void> {
  const nodes = await listNodes(open.manager.docker);
  const managers = nodes.filter((n) => n.Spec.Role === 'manager');
  const target = await nodeIdOf(memberNamed(open, losing));
  const remaining = managers.filter((n) => n.ID !== target);
  if (remaining.length === 0 && !force) {
    throw new TmachineError(`${losing} is the last manager of cluster "${open.cluster.name}"`, { hint: 'pass --force to break the swarm, or `tmachine swarm down`' });
  }
  const reachable = remaining.filter((n) => n.ManagerStatus?.Reachability === 'reachable' || n.ManagerStatus?.Leader).length;
  const quorum = Math.floor(remaining.length / 2) + 1;
  if (remaining.length > 0 && reachable < quorum && !force) {
    throw new TmachineError(`without ${losing}, ${reachable} of ${remaining.length} managers are reachable, below the quorum of ${quorum}`, {
      hint: 'bring the other managers back first, or pass --force',
    });
  }
}

export async function joinMachine(store: Store, name: string, role: 'manager' | 'worker', clusterName?: string): Promise<void> {
  const record = await store.load(name);
  if (!record.provisioned) throw new TmachineError(`machine "${name}" has no engine provisioned`, { hint: `run \`tmachine provision ${name}\`` });
  const open = await openCluster(store, { ...(clusterName ? { cluster: clusterName } : {}) });
  const member = await memberOf(store, record);
  const info = await swarmInfo(member.docker);
  const leaderInfo = await swarmInfo(open.manager.docker);
  if (info.state === 'active' && info.clusterId && info.clusterId === leaderInfo.clusterId) {
    throw new TmachineError(`${name} is already a member of cluster "${open.cluster.name}"`, { hint: `change its role with \`tmachine swarm ${role === 'manager' ? 'promote' : 'demote'} ${name}\`` });
  }
  await joinSwarm(member, open.manager, role, open.cluster.swarm.advertise);
  const nodeId = (await swarmInfo(member.docker)).nodeId;
  await waitNodeReady(open.manager.docker, nodeId);
  await setRecordSwarm(store, name, { cluster: open.cluster.name, role, nodeId });
  open.cluster.nodes = [...open.cluster.nodes.filter((n) => n.name !== name), { name, role }];
  open.cluster.managers = open.cluster.nodes.filter((n) => n.role === 'manager').length;
  await saveCluster(store, open.cluster);
}

export async function leaveMachine(store: Store, name: string, force: boolean): Promise<void> {
  const open = await openCluster(store, { machine: name });
  const member = memberNamed(open, name);
  const nodeId = await nodeIdOf(member);
  const node = (await listNodes(open.manager.docker)).find((n) => n.ID === nodeId);
  if (node?.Spec.Role === 'manager') {
    await checkQuorumAfter(open, name, force);
    // Demote first: raft shrinks cleanly instead of counting a vanished member.
    if (open.manager !== member) await updateNode(open.manager.docker, nodeId, (s) => ({ ...s, Role: 'worker' }));
  }
  await leaveSwarm(member, force || open.manager === member);
  if (open.manager !== member) await open.manager.docker.getNode(nodeId).remove({ force: true }).catch(() => undefined);
  await setRecordSwarm(store, name, undefined);
  open.cluster.nodes = open.cluster.nodes.filter((n) => n.name !== name);
  open.cluster.managers = open.cluster.nodes.filter((n) => n.role === 'manager').length;
  await saveCluster(store, open.cluster);
}

export async function setRole(store: Store, name: string, role: 'manager' | 'worker', force: boolean): Promise<void> {
  const open = await openCluster(store, { machine: name });
  const member = memberNamed(open, name);
  if (role === 'worker') await checkQuorumAfter(open, name, force);
  await updateNode(open.manager.docker, await nodeIdOf(member), (s) => ({ ...s, Role: role }));
  await setRecordSwarm(store, name, { ...member.record.swarm, cluster: open.cluster.name, role });
  open.cluster.nodes = open.cluster.nodes.map((n) => (n.name === name ? { name, role } : n));
  open.cluster.managers = open.cluster.nodes.filter((n) => n.role === 'manager').length;
  await saveCluster(store, open.cluster);
}

export async function setAvailability(store: Store, name: string, availability: NodeSpec['Availability']): Promise<void> {
  const open = await openCluster(store, { machine: name });
  await updateNode(open.manager.docker, await nodeIdOf(memberNamed(open, name)), (s) => ({ ...s, Availability: availability }));
}

/** `k=v` sets a label, `k-` removes it. */
export async function setLabels(store: Store, name: string, changes: string[]): Promise<Record<string, string>> {
  const open = await openCluster(store, { machine: name });
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const c of changes) {
    const m = /^([^=\s]+)=(.*)$/.exec(c);
    if (m) set[m[1]!] = m[2]!;
    else if (/^[^=\s]+-$/.test(c)) remove.push(c.slice(0, -1));
    else throw new TmachineError(`label "${c}" is not k=v (or k- to remove it)`);
  }
  let result: Record<string, string> = {};
  await updateNode(open.manager.docker, await nodeIdOf(memberNamed(open, name)), (s) => {
    const labels = { ...s.Labels, ...set };
    for (const k of remove) delete labels[k];
    result = labels;
    return { ...s, Labels: labels };
  });
  return result;
}

export async function rotateTokens(store: Store, clusterName?: string): Promise<void> {
  const open = await openCluster(store, { ...(clusterName ? { cluster: clusterName } : {}) });
  const swarm = (await open.manager.docker.swarmInspect()) as { Version: { Index: number }; Spec: object; JoinTokens?: { Worker?: string; Manager?: string } };
  registerSecret(swarm.JoinTokens?.Worker);
  registerSecret(swarm.JoinTokens?.Manager);
  await open.manager.docker.swarmUpdate({ _query: { version: swarm.Version.Index, rotateWorkerToken: true, rotateManagerToken: true }, _body: swarm.Spec });
  await joinTokens(open.manager); // registers the new tokens as secrets at once
}

/** Runs the manager's own docker CLI over SSH (stack deploy is a CLI feature, not an API call). */
async function onManager<T>(store: Store, manager: Member, work: (run: (cmd: string) => Promise<string>, upload: (local: string, remote: string) => Promise<void>) => Promise<T>): Promise<T> {
  const conn = await connectMachine(store, manager.record);
  try {
    return await work(
      (cmd) => conn.run(cmd, { what: cmd.split(' ').slice(0, 3).join(' ') }),
      (local, remote) => conn.upload(local, remote),
    );
  } finally {
    conn.close();
  }
}

export interface DeployOptions {
  withRegistryAuth?: boolean;
  prune?: boolean;
}

export async function deployStack(store: Store, file: string, stack: string, clusterName: string | undefined, options: DeployOptions = {}): Promise<string> {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(stack)) throw new TmachineError(`invalid stack name "${stack}"`);
  await fs.access(file).catch(() => {
    throw new TmachineError(`stack file ${file} does not exist`);
  });
  const open = await openCluster(store, { ...(clusterName ? { cluster: clusterName } : {}) });
  const kept = path.join(stacksDir(store, open.cluster.name), `${stack}.yml`);
  await store.ensureDir(path.dirname(kept));
  await store.writeSecretFile(kept, await fs.readFile(file));
  // Images were resolved (or loaded) beforehand; asking a registry from here is never wanted offline.
  const flags = ['--resolve-image never', options.withRegistryAuth ? '--with-registry-auth' : '', options.prune ? '--prune' : ''].filter(Boolean).join(' ');
  const output = await onManager(store, open.manager, async (run, upload) => {
    const remote = `/tmp/tmachine-stack-${stack}-${process.pid}.yml`;
    await upload(kept, remote);
    try {
      return await run(`docker stack deploy ${flags} -c ${shellQuote(remote)} ${shellQuote(stack)}`);
    } finally {
      await run(`rm -f ${shellQuote(remote)}`).catch(() => undefined);
    }
  });
  open.cluster.stacks = [...open.cluster.stacks.filter((s) => s.name !== stack), { name: stack, file: kept, deployedAt: new Date().toISOString() }];
  await saveCluster(store, open.cluster);
  return output;
}

export async function removeStack(store: Store, stack: string, clusterName?: string): Promise<void> {
  const open = await openCluster(store, { ...(clusterName ? { cluster: clusterName } : {}) });
  await onManager(store, open.manager, (run) => run(`docker stack rm ${shellQuote(stack)}`));
  open.cluster.stacks = open.cluster.stacks.filter((s) => s.name !== stack);
  await saveCluster(store, open.cluster);
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

/**
 * After quorum is lost: the survivor forces a new cluster of one manager, the managers that
 * still answer leave and rejoin, and healthy nodes are promoted back up to the cluster's
 * manager count. Returns what was done, line by line.
 */
export async function recoverCluster(store: Store, survivorName: string | undefined, clusterName?: string): Promise<string[]> {
  let name = clusterName;
  if (!name && survivorName) name = (await store.load(survivorName)).swarm?.cluster;
  const cluster = await requireCluster(store, name);
  const members = await clusterMembers(store, cluster, 10_000);
  const answers = async (m: Member) => (await withDeadline(swarmInfo(m.docker), 5_000).catch(() => undefined)) !== undefined;
  const managerNames = cluster.nodes.filter((n) => n.role === 'manager').map((n) => n.name);
  let survivor = survivorName ? members.find((m) => m.record.name === survivorName) : undefined;
  if (survivorName && !survivor) throw new TmachineError(`machine "${survivorName}" is not a member of cluster "${cluster.name}"`);
  if (!survivor) {
    for (const m of members.filter((x) => managerNames.includes(x.record.name))) if (await answers(m)) { survivor = m; break; }
  }
  if (!survivor || !(await answers(survivor))) throw new TmachineError('no manager answers to rebuild the swarm from', { hint: 'start at least one manager machine' });
  const log: string[] = [];
  await initSwarm(survivor, { advertise: cluster.swarm.advertise, forceNewCluster: true, ...(cluster.swarm.dataPathPort ? { dataPathPort: cluster.swarm.dataPathPort } : {}) });
  log.push(`${survivor.record.name}: forced a new cluster from its state`);
  const survivorId = (await swarmInfo(survivor.docker)).nodeId;

  // The old managers are now strangers to the new raft group: those that answer rejoin.
  for (const m of members) {
    if (m === survivor || !managerNames.includes(m.record.name)) continue;
    if (!(await answers(m))) {
      log.push(`${m.record.name}: down; run \`tmachine swarm bootstrap\` once it is back`);
      continue;
    }
    await joinSwarm(m, survivor, 'manager', cluster.swarm.advertise);
    log.push(`${m.record.name}: rejoined as manager`);
  }
  // Node entries of the old incarnations (Down, replaced) go; then managers back to the wanted count.
  const nodes = await listNodes(survivor.docker);
  const liveIds = new Set<string>([survivorId]);
  for (const m of members) if (await answers(m)) liveIds.add((await swarmInfo(m.docker)).nodeId);
  for (const n of nodes) {
    if (liveIds.has(n.ID) || n.Status?.State !== 'down') continue;
    if (n.Spec.Role === 'manager') await updateNode(survivor.docker, n.ID, (s) => ({ ...s, Role: 'worker' })).catch(() => undefined);
    await survivor.docker.getNode(n.ID).remove({ force: true }).catch((e: unknown) => warn(`could not remove stale node ${n.ID}: ${engineMessage(e)}`));
  }
  let managers = (await listNodes(survivor.docker)).filter((n) => n.Spec.Role === 'manager' && n.Status?.State === 'ready').length;
  for (const m of members) {
    if (managers >= cluster.managers) break;
    const info = await withDeadline(swarmInfo(m.docker), 5_000).catch(() => undefined);
    if (!info || info.state !== 'active' || info.controlAvailable) continue;
    await updateNode(survivor.docker, info.nodeId, (s) => ({ ...s, Role: 'manager' }));
    await setRecordSwarm(store, m.record.name, { ...m.record.swarm, cluster: cluster.name, role: 'manager', nodeId: info.nodeId });
    managers++;
    log.push(`${m.record.name}: promoted to manager (cluster wants ${cluster.managers})`);
  }
  for (const m of members) {
    const info = await withDeadline(swarmInfo(m.docker), 5_000).catch(() => undefined);
    if (info?.nodeId) await setRecordSwarm(store, m.record.name, { ...m.record.swarm, cluster: cluster.name, nodeId: info.nodeId, role: info.controlAvailable ? 'manager' : (m.record.swarm?.role ?? 'worker') });
  }
  info(`cluster "${cluster.name}" rebuilt from ${survivor.record.name}`);
  return log;
}

/** Every member leaves (workers first, the leader last); --rm also removes the machines. */
export async function swarmDown(store: Store, clusterName: string | undefined): Promise<ClusterRecord> {
  const cluster = await requireCluster(store, clusterName);
  const members = await clusterMembers(store, cluster, 10_000);
  const order = [...members].sort((a, b) => Number(a.record.swarm?.role === 'manager') - Number(b.record.swarm?.role === 'manager'));
  for (const m of order) {
    await withDeadline(m.docker.swarmLeave({ force: true }), 30_000).catch(() => undefined);
    await setRecordSwarm(store, m.record.name, undefined);
  }
  await removeCluster(store, cluster.name);
  return cluster;
}
