/**
 * Recovery to the full manager count. When quorum is lost, a surviving manager forces a new
 * cluster from its state (`--force-new-cluster`; services, networks, configs and secrets
 * survive) and the node entries of the managers that are gone are removed. Then, whether
 * quorum was lost or not: members that answer with stale state (old managers started again)
 * leave and rejoin as workers, and healthy nodes are promoted, recorded managers first,
 * until the cluster has its manager count. Running it again on a healthy cluster only does
 * what is still missing. What was done and what is next is kept for `swarm status`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { z } from 'zod';
import { TmachineError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { info, warn } from '../../ui/log.js';
import { requireCluster, stacksDir, updateCluster, withClusterLock, type ClusterRecord } from '../cluster-record.js';
import { clusterMembers, engineMessage, healthyManager, type Member, type SwarmInfo } from '../engines.js';
import { initSwarm, inspectNode, joinSwarm, listNodes, updateNode, waitNodeReady, type SwarmNode } from '../membership.js';
import { hostState } from '../status.js';
import { setRecordSwarm } from './cluster.js';
import { engineAnswers, pollUntil } from './host-engine.js';

export const recoveryNoteSchema = z.object({
  at: z.string(),
  from: z.string(),
  forcedNewCluster: z.boolean(),
  done: z.array(z.string()),
  /** Machines that did not answer: they rejoin on the next `swarm recover` or `swarm bootstrap`. */
  pending: z.array(z.string()),
  /** Machines whose hosts are gone (the driver finds none): taken out of the swarm and the cluster. */
  gone: z.array(z.string()).optional(),
});
export type RecoveryNote = z.infer<typeof recoveryNoteSchema>;

function noteFile(store: Store, cluster: string): string {
  return path.join(path.dirname(stacksDir(store, cluster)), 'recovery.json');
}

export async function loadRecoveryNote(store: Store, cluster: string): Promise<RecoveryNote | undefined> {
  const text = await fs.readFile(noteFile(store, cluster), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : recoveryNoteSchema.parse(JSON.parse(text));
}

async function saveRecoveryNote(store: Store, cluster: string, note: RecoveryNote): Promise<void> {
  await store.ensureDir(path.dirname(noteFile(store, cluster)));
  await writeFileAtomic(noteFile(store, cluster), JSON.stringify(note, null, 2) + '\n', { mode: 0o600 });
}

export interface RecoveryReport extends RecoveryNote {
  cluster: string;
  managers: number;
  managersWanted: number;
}

export async function recoverCluster(store: Store, survivorName: string | undefined, clusterName?: string): Promise<RecoveryReport> {
  let name = clusterName;
  if (!name && survivorName) name = (await store.load(survivorName)).swarm?.cluster;
  const cluster = await requireCluster(store, name);
  return withClusterLock(store, cluster.name, 'swarm recover', undefined, () => recoverLocked(store, cluster, survivorName));
}

async function recoverLocked(store: Store, cluster: ClusterRecord, survivorName: string | undefined): Promise<RecoveryReport> {
  const members = await clusterMembers(store, cluster, 10_000);
  const recordedManagers = new Set(cluster.nodes.filter((n) => n.role === 'manager').map((n) => n.name));
  if (survivorName && !members.some((m) => m.record.name === survivorName)) throw new TmachineError(`machine "${survivorName}" is not a member of cluster "${cluster.name}"`);
  const answers = new Map<string, SwarmInfo | undefined>();
  await Promise.all(members.map(async (m) => answers.set(m.record.name, await engineAnswers(m))));
  // A member that does not answer and whose host the driver no longer finds is gone for good.
  const gone = new Set<string>();
  await Promise.all(members.filter((m) => !answers.get(m.record.name)).map(async (m) => (await hostState(store, m.record)) === 'not-found' && gone.add(m.record.name)));

  const done: string[] = [];
  const managerCandidates = members.filter((m) => recordedManagers.has(m.record.name) || m.record.swarm?.role === 'manager' || answers.get(m.record.name)?.controlAvailable);
  let leader = (await healthyManager(managerCandidates))?.manager;
  const forced = leader === undefined;
  if (!leader) {
    const survivor = survivorName
      ? members.find((m) => m.record.name === survivorName)
      : managerCandidates.find((m) => answers.get(m.record.name)?.controlAvailable);
    if (!survivor || !answers.get(survivor.record.name)) throw new TmachineError('no manager answers to rebuild the swarm from', { hint: 'start at least one manager machine (`tmachine start NAME`)' });
    if (!answers.get(survivor.record.name)?.controlAvailable) throw new TmachineError(`${survivor.record.name} is not a manager, so it holds no swarm state to rebuild from`, { hint: 'name a surviving manager' });
    await initSwarm(survivor, { advertise: cluster.swarm.advertise, forceNewCluster: true, ...(cluster.swarm.dataPathPort ? { dataPathPort: cluster.swarm.dataPathPort } : {}) });
    leader = await pollUntil(`${survivor.record.name} leading the new cluster`, async () => (await healthyManager([survivor]))?.manager, 60_000);
    done.push(`${survivor.record.name}: forced a new cluster from its state`);
  }
  const leaderName = leader.record.name;

  // Members that answer: in the leader's swarm, or stale (left behind by a forced new cluster).
  const liveIds = new Set<string>();
  /** Machines in the leader's swarm now, by name (an older entry of the same host is stale). */
  const liveNames = new Set<string>();
  const pending: string[] = [];
  for (const m of members) {
    if (m === leader) {
      liveIds.add((await engineAnswers(m))!.nodeId);
      liveNames.add(m.record.name);
      continue;
    }
    // An engine that answered a moment ago gets a second, longer chance: right after a leader
    // change a manager's info call can take longer than the first probe allows.
    const seen = gone.has(m.record.name) ? undefined : ((await engineAnswers(m)) ?? (answers.get(m.record.name) ? await engineAnswers(m, 20_000) : undefined));
    if (!seen) {
      if (!gone.has(m.record.name)) pending.push(m.record.name);
      continue;
    }
    if (!(await isStale(leader, seen))) {
      liveIds.add(seen.nodeId);
      liveNames.add(m.record.name);
      continue;
    }
    await joinSwarm(m, leader, 'worker', cluster.swarm.advertise);
    const id = (await engineAnswers(m))?.nodeId ?? '';
    await waitNodeReady(leader.docker, id);
    liveIds.add(id);
    liveNames.add(m.record.name);
    await setRecordSwarm(store, m.record.name, { ...m.record.swarm, cluster: cluster.name, role: 'worker', nodeId: id });
    done.push(`${m.record.name}: had stale swarm state; left and rejoined`);
  }

  // Node entries that go, so the node list holds each machine once. After a forced new cluster:
  // those of members that did not answer (they show "unknown", not "down") and any that is
  // down. Always: those of machines whose hosts are gone, and down entries that no member is
  // or that are an older entry of a member in the swarm now (one that left and rejoined).
  const pendingIds = new Set(members.filter((m) => pending.includes(m.record.name)).map((m) => m.record.swarm?.nodeId).filter((id): id is string => Boolean(id)));
  const goneIds = new Set(members.filter((m) => gone.has(m.record.name)).map((m) => m.record.swarm?.nodeId).filter((id): id is string => Boolean(id)));
  const known = (n: SwarmNode) => members.some((m) => m.record.swarm?.nodeId === n.ID || m.record.name === n.Description?.Hostname);
  for (const n of await listNodes(leader.docker)) {
    if (liveIds.has(n.ID)) continue;
    const host = n.Description?.Hostname ?? '';
    const lost = goneIds.has(n.ID) || gone.has(host) || (n.Status?.State === 'down' && (!known(n) || liveNames.has(host)));
    const stale = forced && (pendingIds.has(n.ID) || pending.includes(host) || n.Status?.State === 'down');
    if (lost || stale) await removeNodeEntry(leader, n, done);
  }
  if (gone.size > 0) {
    await updateCluster(store, cluster.name, (current) => ({ ...(current ?? cluster), nodes: (current ?? cluster).nodes.filter((n) => !gone.has(n.name)) }));
    for (const name of gone) {
      await setRecordSwarm(store, name, undefined);
      done.push(`${name}: its host is gone; taken out of the swarm and the cluster (\`tmachine rm -f ${name}\` forgets the machine)`);
    }
  }

  const live = members.filter((m) => !gone.has(m.record.name));
  const managers = await promoteToCount(store, cluster, leader, live, recordedManagers, done);
  for (const m of live) {
    const seen = await engineAnswers(m);
    if (seen?.nodeId && seen.state === 'active') await setRecordSwarm(store, m.record.name, { ...m.record.swarm, cluster: cluster.name, nodeId: seen.nodeId, role: seen.controlAvailable ? 'manager' : 'worker' });
  }
  const note: RecoveryNote = { at: new Date().toISOString(), from: leaderName, forcedNewCluster: forced, done, pending, gone: [...gone] };
  await saveRecoveryNote(store, cluster.name, note);
  info(`cluster "${cluster.name}": ${managers} of ${cluster.managers} managers`);
  return { ...note, cluster: cluster.name, managers, managersWanted: cluster.managers };
}

/**
 * Takes a node entry out of the node list: a manager is demoted first (raft shrinks while the
 * others keep quorum), and the removal is retried until the demotion has gone through.
 */
async function removeNodeEntry(leader: Member, node: SwarmNode, done: string[]): Promise<void> {
  const name = node.Description?.Hostname ?? node.ID;
  let last: unknown;
  try {
    // Right after a forced new cluster an old manager's entry may refuse the demotion; removing it still works.
    if (node.Spec.Role === 'manager') await updateNode(leader.docker, node.ID, (s) => ({ ...s, Role: 'worker' })).catch((e: unknown) => void (last = e));
    const remove = () => leader.docker.getNode(node.ID).remove({ force: true }).then(() => true, (e: unknown) => void (last = e));
    await pollUntil(`the removal of node ${name}`, remove, 60_000);
    done.push(`removed the stale node entry ${name}`);
  } catch (e) {
    warn(`could not remove stale node ${node.ID}: ${engineMessage(last ?? e)}`);
  }
}

/**
 * A member is stale when the leader does not know its node ID, when it thinks it is a
 * manager but the leader does not count it as a reachable one (an old raft group's
 * manager started again), or when it is a worker the leader keeps seeing down.
 */
async function isStale(leader: Member, seen: SwarmInfo): Promise<boolean> {
  if (seen.state !== 'active') return true;
  const entry = await inspectNode(leader.docker, seen.nodeId).catch(() => undefined);
  if (!entry) return true;
  if (seen.controlAvailable) return !(entry.ManagerStatus?.Leader || entry.ManagerStatus?.Reachability === 'reachable');
  const ready = await pollUntil('worker ready', async () => ((await inspectNode(leader.docker, seen.nodeId)).Status?.State === 'ready' ? true : undefined), 30_000).catch(() => false);
  return !ready;
}

/** Promotes ready, active workers (recorded managers first) until the wanted manager count. */
async function promoteToCount(store: Store, cluster: ClusterRecord, leader: Member, members: Member[], recordedManagers: Set<string>, done: string[]): Promise<number> {
  const nodes = await listNodes(leader.docker);
  let managers = nodes.filter((n) => n.Spec.Role === 'manager' && n.Status?.State === 'ready').length;
  const byId = new Map<string, Member>();
  for (const m of members) {
    const id = (await engineAnswers(m))?.nodeId;
    if (id) byId.set(id, m);
  }
  const candidates = nodes
    .filter((n) => n.Spec.Role === 'worker' && n.Status?.State === 'ready' && n.Spec.Availability === 'active' && byId.has(n.ID))
    .sort((a, b) => Number(recordedManagers.has(byId.get(b.ID)!.record.name)) - Number(recordedManagers.has(byId.get(a.ID)!.record.name)));
  for (const n of candidates) {
    if (managers >= cluster.managers) break;
    const m = byId.get(n.ID)!;
    await updateNode(leader.docker, n.ID, (s) => ({ ...s, Role: 'manager' }));
    const outcome = await pollUntil(`${m.record.name} reachable as manager`, async () => {
      if ((await inspectNode(leader.docker, n.ID)).ManagerStatus?.Reachability === 'reachable') return 'promoted';
      return (await engineAnswers(m))?.state === 'error' ? 'failed' : undefined;
    }, 120_000);
    let nodeId = n.ID;
    if (outcome === 'failed') {
      // A promoted node joins raft through the manager it first joined; when that one's host is
      // gone, the join fails for good ("can't initialize raft node"). Rejoin through the leader.
      await joinSwarm(m, leader, 'manager', cluster.swarm.advertise);
      nodeId = (await engineAnswers(m))?.nodeId ?? '';
      await waitNodeReady(leader.docker, nodeId);
      await pollUntil(`${m.record.name} reachable as manager`, async () => ((await inspectNode(leader.docker, nodeId)).ManagerStatus?.Reachability === 'reachable' ? true : undefined), 120_000);
      await removeNodeEntry(leader, { ...n, Spec: { ...n.Spec, Role: 'manager' } }, done);
    }
    await setRecordSwarm(store, m.record.name, { ...m.record.swarm, cluster: cluster.name, role: 'manager', nodeId });
    managers++;
    done.push(`${m.record.name}: ${outcome === 'failed' ? 'rejoined as manager (its promotion could not reach the manager it had joined through)' : 'promoted to manager'} (cluster wants ${cluster.managers})`);
  }
  return managers;
}

/** The lines `swarm status` adds after a recovery: what was done, and what is still to do. */
export function recoveryLines(note: RecoveryNote, backNow: Set<string>): string[] {
  const next = note.pending.filter((n) => !backNow.has(n));
  return [
    `recovered at ${note.at} from ${note.from}${note.forcedNewCluster ? ' (forced a new cluster)' : ''}: ${note.done.join('; ') || 'nothing needed'}`,
    next.length > 0 ? `next: ${next.join(', ')} did not answer; once started, \`tmachine swarm recover\` (or \`swarm bootstrap\`) makes them rejoin` : 'next: nothing, every machine is back',
  ];
}
