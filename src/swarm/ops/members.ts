/** Membership, roles, availability, labels and join tokens of a cluster's nodes. */
import { TmachineError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { registerSecret } from '../../ui/redact.js';
import { updateCluster, type ClusterRecord } from '../cluster-record.js';
import { joinTokens, memberOf, swarmInfo } from '../engines.js';
import { joinSwarm, leaveSwarm, listNodes, updateNode, waitNodeReady, type NodeSpec } from '../membership.js';
import { applyClusterMounts } from './mounts.js';
import { trustClusterRegistries } from './registry.js';
import { checkQuorumAfter, memberNamed, nodeIdOf, openCluster, setRecordSwarm } from './cluster.js';

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
  // Registries the cluster trusts are trusted by every node that joins it.
  await trustClusterRegistries(store, open.cluster.name, name);
  await applyClusterMounts(store, open.cluster.name, name);
  await joinSwarm(member, open.manager, role, open.cluster.swarm.advertise);
  const nodeId = (await swarmInfo(member.docker)).nodeId;
  await waitNodeReady(open.manager.docker, nodeId);
  await setRecordSwarm(store, name, { cluster: open.cluster.name, role, nodeId });
  await updateNodes(store, open.cluster, (nodes) => [...nodes.filter((n) => n.name !== name), { name, role }]);
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
  await updateNodes(store, open.cluster, (nodes) => nodes.filter((n) => n.name !== name));
}

export async function setRole(store: Store, name: string, role: 'manager' | 'worker', force: boolean): Promise<void> {
  const open = await openCluster(store, { machine: name });
  const member = memberNamed(open, name);
  if (role === 'worker') await checkQuorumAfter(open, name, force);
  await updateNode(open.manager.docker, await nodeIdOf(member), (s) => ({ ...s, Role: role }));
  await setRecordSwarm(store, name, { ...member.record.swarm, cluster: open.cluster.name, role });
  await updateNodes(store, open.cluster, (nodes) => nodes.map((n) => (n.name === name ? { name, role } : n)));
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


/** The cluster's member list (and manager count) changed under the record lock. */
async function updateNodes(store: Store, cluster: ClusterRecord, change: (nodes: ClusterRecord['nodes']) => ClusterRecord['nodes']): Promise<void> {
  await updateCluster(store, cluster.name, (current) => {
    const base = current ?? cluster;
    const nodes = change(base.nodes);
    return { ...base, nodes, managers: nodes.filter((n) => n.role === 'manager').length };
  });
}
