/** Rebuilding a swarm that lost quorum, back up to the cluster's manager count. */
import { withDeadline } from '../../async.js';
import { TmachineError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { info, warn } from '../../ui/log.js';
import { requireCluster } from '../cluster-record.js';
import { clusterMembers, engineMessage, swarmInfo, type Member } from '../engines.js';
import { initSwarm, joinSwarm, listNodes, updateNode } from '../membership.js';
import { setRecordSwarm } from './cluster.js';

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

