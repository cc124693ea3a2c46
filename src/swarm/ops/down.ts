/** Dissolving a swarm. */
import { withDeadline } from '../../async.js';
import type { Store } from '../../store/store.js';
import { removeCluster, requireCluster, type ClusterRecord } from '../cluster-record.js';
import { clusterMembers } from '../engines.js';
import { setRecordSwarm } from './cluster.js';

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
