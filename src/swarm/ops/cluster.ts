/**
 * What every swarm operation starts from: the cluster a command means, its members, a
 * manager with control, and small helpers over node IDs, machine records and the manager's
 * own docker CLI over SSH.
 */
import { TmachineError } from '../../errors.js';
import { connectMachine } from '../../machine/connect.js';
import type { MachineRecord } from '../../store/machine-record.js';
import type { Store } from '../../store/store.js';
import { requireCluster, type ClusterRecord } from '../cluster-record.js';
import { clusterMembers, swarmInfo, type Member } from '../engines.js';
import { listNodes } from '../membership.js';
import { requireHealthyManager } from '../status.js';

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


export function memberNamed(open: OpenCluster, name: string): Member {
  const m = open.members.find((x) => x.record.name === name);
  if (!m) throw new TmachineError(`machine "${name}" is not a member of cluster "${open.cluster.name}"`, { hint: `add it with \`tmachine swarm join ${name} --role worker\`` });
  return m;
}

export async function nodeIdOf(m: Member): Promise<string> {
  if (m.record.swarm?.nodeId) return m.record.swarm.nodeId;
  const id = (await swarmInfo(m.docker)).nodeId;
  if (!id) throw new TmachineError(`${m.record.name} is not in a swarm`);
  return id;
}

export async function setRecordSwarm(store: Store, name: string, swarm: MachineRecord['swarm'] | undefined): Promise<void> {
  await store.update(name, (r) => {
    if (swarm) r.swarm = swarm;
    else delete r.swarm;
  });
}

/** Reachable managers after a change, against the quorum the remaining managers need. */
export async function checkQuorumAfter(open: OpenCluster, losing: string, force: boolean): Promise<void> {
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

export type RunOnHost = (cmd: string, options?: { stdin?: string; what?: string }) => Promise<string>;

/** Runs the manager's own docker CLI over SSH (stack deploy is a CLI feature, not an API call). */
export async function onManager<T>(store: Store, manager: Member, work: (run: RunOnHost, upload: (local: string, remote: string) => Promise<void>) => Promise<T>): Promise<T> {
  const conn = await connectMachine(store, manager.record);
  try {
    return await work(
      (cmd, options = {}) => conn.run(cmd, { what: options.what ?? cmd.split(' ').slice(0, 3).join(' '), ...(options.stdin !== undefined ? { stdin: options.stdin } : {}) }),
      (local, remote) => conn.upload(local, remote),
    );
  } finally {
    conn.close();
  }
}
