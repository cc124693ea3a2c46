/** `swarm status` and the node table bootstrap ends with: the swarm as its managers see it. */
import type { HostState } from '../../drivers/kit/index.js';
import { TmachineError } from '../errors.js';
import { driverOf } from '../machine/driver-instance.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { table } from '../ui/table.js';
import type { ClusterRecord } from './cluster-record.js';
import { clusterMembers, healthyManager, swarmInfo, type Member } from './engines.js';
import { withDeadline } from '../async.js';
import { listNodes, type SwarmNode } from './membership.js';

export interface NodeRow {
  machine: string;
  nodeId: string;
  role: string;
  availability: string;
  status: string;
  managerStatus: string;
  leader: boolean;
  engine: string;
  labels: Record<string, string>;
}

export interface ServiceRow {
  name: string;
  mode: string;
  running: number;
  desired: number;
}

export interface ClusterStatus {
  cluster: string;
  manager: string;
  nodes: NodeRow[];
  services: ServiceRow[];
  managersWanted: number;
  health: ClusterHealth;
}

/** A node that is not as it should be, and what its host's driver says about the host. */
export interface NodeProblem {
  machine: string;
  role: string;
  status: string;
  managerStatus: string;
  /** The driver's state of the host; `none`: no machine of this store is that node; `stale`: an older entry of a machine that rejoined. */
  host: HostState | 'none' | 'stale';
  why: string;
}

/** The swarm's state in one line, and the next command; `--json` carries the same facts. */
export interface ClusterHealth {
  state: 'healthy' | 'degraded';
  /** Always true here: without quorum `swarm status` fails with the `swarm recover` to run. */
  quorumHeld: boolean;
  managers: { wanted: number; listed: number; reachable: number; quorum: number };
  problems: NodeProblem[];
  summary: string;
  next?: string;
}

function machineOf(node: SwarmNode, members: Member[]): string {
  const byId = members.find((m) => m.record.swarm?.nodeId === node.ID);
  return byId?.record.name ?? node.Description?.Hostname ?? node.ID.slice(0, 12);
}

/** Finds a manager with control, or explains what is wrong (quorum lost, all down) in one line. */
export async function requireHealthyManager(cluster: ClusterRecord, members: Member[]): Promise<Member> {
  const managerNames = new Set(cluster.nodes.filter((n) => n.role === 'manager').map((n) => n.name));
  const candidates = members.filter((m) => managerNames.has(m.record.name) || m.record.swarm?.role === 'manager');
  const healthy = await healthyManager(candidates);
  if (healthy) return healthy.manager;
  const answering: string[] = [];
  for (const m of candidates) {
    const info = await withDeadline(swarmInfo(m.docker), 5_000).catch(() => undefined);
    if (info && info.state === 'active') answering.push(m.record.name);
  }
  const down = candidates.filter((m) => !answering.includes(m.record.name)).map((m) => m.record.name);
  if (answering.length > 0 && down.length === 0) {
    // Every manager answers, none can list the nodes: no leader (yet, or any more).
    throw new TmachineError(`no manager of cluster "${cluster.name}" has control: ${answering.join(', ')} ${answering.length === 1 ? 'answers' : 'answer'} but cannot list the swarm's nodes (no leader: quorum lost, or an election still running)`, {
      hint: `try again in a moment; if it stays so, \`tmachine swarm recover ${answering[0]}\` rebuilds the swarm from that manager`,
    });
  }
  if (answering.length > 0) {
    throw new TmachineError(
      `quorum lost in cluster "${cluster.name}": ${down.length} of ${candidates.length} managers are down (${down.join(', ')}), so the swarm cannot be changed or listed`,
      { hint: `bring them back, or run \`tmachine swarm recover ${answering[0]}\` to rebuild the swarm from that survivor` },
    );
  }
  throw new TmachineError(`no manager of cluster "${cluster.name}" answers (${down.join(', ')})`, {
    hint: 'start the manager machines (`tmachine start NAME`) and try again',
  });
}

/** The driver's view of a host, bounded (a driver that does not answer says `unknown`). */
export async function hostState(store: Store, record: MachineRecord, ms = 5_000): Promise<HostState> {
  try {
    return await withDeadline((await driverOf(store, record)).state(), ms);
  } catch {
    return 'unknown';
  }
}

const managerUp = (n: Pick<NodeRow, 'managerStatus'>) => n.managerStatus === 'leader' || n.managerStatus === 'reachable';

function whyOf(host: NodeProblem['host']): string {
  switch (host) {
    case 'not-found':
      return 'its host is gone';
    case 'stopped':
    case 'paused':
      return `its host is ${host}`;
    case 'running':
      return 'its host runs, but the swarm does not reach it (network cut, or its engine is down)';
    case 'none':
      return 'no machine of this store is that node';
    case 'stale':
      return 'an older entry of a machine that rejoined';
    default:
      return `its host is in state ${host}`;
  }
}

/**
 * What the node list means: which nodes are not ready (managers: not reachable), why (the
 * driver's view of their hosts), whether the managers are as many as the cluster wants, and
 * the command that gets the swarm back to health.
 */
export function assessHealth(nodes: NodeRow[], managersWanted: number, hosts: Map<string, NodeProblem['host']>): ClusterHealth {
  const managers = nodes.filter((n) => n.role === 'manager');
  const reachable = managers.filter(managerUp).length;
  const quorum = Math.floor(managers.length / 2) + 1;
  const problems: NodeProblem[] = nodes
    .filter((n) => (n.role === 'manager' ? !managerUp(n) : n.status !== 'ready'))
    .map((n) => {
      const host = hosts.get(n.nodeId) ?? 'unknown';
      return { machine: n.machine, role: n.role, status: n.status, managerStatus: n.managerStatus, host, why: whyOf(host) };
    });
  const readyWorkers = nodes.filter((n) => n.role === 'worker' && n.status === 'ready' && n.availability === 'active').length;
  const names = (ps: NodeProblem[]) => ps.map((p) => p.machine).join(', ');
  const lost = problems.filter((p) => p.host === 'not-found' || p.host === 'none' || p.host === 'stale');
  const stopped = problems.filter((p) => p.host === 'stopped' || p.host === 'paused');
  // Right after a leader change the new leader reports "unknown" until the node's next heartbeat.
  const settling = problems.filter((p) => p.host === 'running' && p.status === 'unknown' && p.role === 'worker');
  for (const p of settling) p.why = 'its state is not known yet (a new leader hears from it within seconds)';
  const cut = problems.filter((p) => p.host === 'running' && !settling.includes(p));
  const unknown = problems.filter((p) => !lost.includes(p) && !stopped.includes(p) && !cut.includes(p) && !settling.includes(p));
  // Managers that come back by themselves count; those whose hosts are gone do not.
  const short = managersWanted - (managers.length - lost.filter((p) => p.role === 'manager').length);

  const next: string[] = [];
  if (lost.length > 0 || short > 0) {
    const promoted = Math.min(Math.max(short, 0), readyWorkers);
    const does = [lost.length > 0 ? `removes ${names(lost)} from the swarm` : '', promoted > 0 ? `promotes ${promoted === 1 ? 'a worker' : `${promoted} workers`}` : ''].filter(Boolean);
    if (does.length > 0) next.push(`\`tmachine swarm recover\` ${does.join(' and ')}${short > 0 && promoted === short ? ` to get back to ${managersWanted} managers` : ''}`);
    const missing = short - promoted;
    if (missing > 0) next.push(`\`tmachine swarm join NAME --role manager\` with ${missing === 1 ? 'a new machine' : `${missing} new machines`} gets back to ${managersWanted} managers`);
  }
  if (stopped.length > 0) next.push(`\`tmachine start ${stopped.map((p) => p.machine).join(' ')}\` (it rejoins by itself)`);
  for (const p of cut) next.push(`restore the network or the engine of ${p.machine} (\`tmachine ssh ${p.machine} -- docker info\`); it rejoins${p.role === 'manager' ? ' as a manager' : ''} by itself once the others reach it`);
  for (const p of unknown) next.push(`\`tmachine status ${p.machine}\` says what its host is doing`);

  const counts = `${reachable} of ${managers.length} managers reachable (quorum needs ${quorum})`;
  const wanted = managers.length !== managersWanted ? `, the cluster wants ${managersWanted}` : '';
  let summary: string;
  if (problems.length === 0 && short <= 0) {
    summary = `healthy: ${counts}, every node ready`;
  } else {
    const what = problems.map((p) => `${p.role} ${p.machine} is ${p.role === 'manager' ? 'unreachable' : p.status} (${p.why})`);
    if (problems.length === 0) what.push(`only ${managers.length} managers`);
    const edge = reachable === quorum && managers.length > 1 ? '; losing one more manager loses quorum' : '';
    summary = `degraded: ${what.join('; ')}; quorum held: ${counts}${wanted}${edge}`;
  }
  return {
    state: problems.length === 0 && short <= 0 ? 'healthy' : 'degraded',
    quorumHeld: true,
    managers: { wanted: managersWanted, listed: managers.length, reachable, quorum },
    problems,
    summary,
    ...(next.length > 0 ? { next: next.join('; ') } : {}),
  };
}

export async function clusterStatus(store: Store, cluster: ClusterRecord): Promise<ClusterStatus> {
  const members = await clusterMembers(store, cluster, 10_000);
  const manager = await requireHealthyManager(cluster, members);
  const nodes = await listNodes(manager.docker);
  const services = (await manager.docker.listServices()) as Array<{
    ID: string;
    Spec: { Name: string; Mode?: { Replicated?: { Replicas?: number }; Global?: object } };
  }>;
  const tasks = (await manager.docker.listTasks({ filters: { 'desired-state': ['running'] } })) as Array<{ ServiceID: string; NodeID: string; Status: { State: string } }>;
  const activeNodes = new Set(nodes.filter((n) => n.Status?.State === 'ready' && n.Spec.Availability === 'active').map((n) => n.ID));
  const rows: NodeRow[] = nodes
      .map((n) => ({
        machine: machineOf(n, members),
        nodeId: n.ID,
        role: n.Spec.Role,
        availability: n.Spec.Availability,
        status: n.Status?.State ?? 'unknown',
        managerStatus: n.ManagerStatus ? (n.ManagerStatus.Leader ? 'leader' : (n.ManagerStatus.Reachability ?? '')) : '',
        leader: Boolean(n.ManagerStatus?.Leader),
        engine: n.Description?.Engine?.EngineVersion ?? '',
        labels: n.Spec.Labels ?? {},
      }))
      .sort((a, b) => (a.role === b.role ? a.machine.localeCompare(b.machine) : a.role === 'manager' ? -1 : 1));
  // Only for nodes that are not as they should be: ask their hosts' drivers why.
  const hosts = new Map<string, NodeProblem['host']>();
  await Promise.all(
    rows
      .filter((r) => (r.role === 'manager' ? !managerUp(r) : r.status !== 'ready'))
      .map(async (r) => {
        const member = members.find((m) => m.record.swarm?.nodeId === r.nodeId) ?? members.find((m) => m.record.name === r.machine);
        const rejoined = rows.some((o) => o !== r && o.machine === r.machine && o.status === 'ready');
        hosts.set(r.nodeId, rejoined ? 'stale' : member ? await hostState(store, member.record) : 'none');
      }),
  );
  return {
    cluster: cluster.name,
    manager: manager.record.name,
    managersWanted: cluster.managers,
    health: assessHealth(rows, cluster.managers, hosts),
    nodes: rows,
    services: services.map((s) => {
      const own = tasks.filter((t) => t.ServiceID === s.ID);
      const global = Boolean(s.Spec.Mode?.Global);
      return {
        name: s.Spec.Name,
        mode: global ? 'global' : 'replicated',
        running: own.filter((t) => t.Status.State === 'running').length,
        desired: global ? activeNodes.size : (s.Spec.Mode?.Replicated?.Replicas ?? 0),
      };
    }),
  };
}

export function formatStatus(status: ClusterStatus): string {
  const nodeTable = table(
    ['MACHINE', 'ROLE', 'AVAILABILITY', 'STATUS', 'MANAGER', 'ENGINE', 'LABELS'],
    status.nodes.map((n) => [
      n.machine,
      n.role,
      n.availability,
      n.status,
      n.managerStatus,
      n.engine,
      Object.entries(n.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    ]),
  );
  const lines = [nodeTable, '', `state: ${status.health.summary}`, ...(status.health.next ? [`next: ${status.health.next}`] : [])];
  if (status.services.length > 0) {
    lines.push('', table(['SERVICE', 'MODE', 'REPLICAS'], status.services.map((s) => [s.name, s.mode, `${s.running}/${s.desired}`])));
  }
  return lines.join('\n');
}

export interface NodeTaskRow {
  name: string;
  image: string;
  desired: string;
  state: string;
  since: string;
  error: string;
}

export interface NodeStatus {
  machine: string;
  nodeId: string;
  hostname: string;
  role: string;
  availability: string;
  status: string;
  address: string;
  managerStatus: string;
  engine: string;
  labels: Record<string, string>;
  tasks: NodeTaskRow[];
}

/** One node as `docker node inspect --pretty` and `docker node ps` show it. */
export async function nodeStatus(store: Store, cluster: ClusterRecord, machine: string): Promise<NodeStatus> {
  const members = await clusterMembers(store, cluster, 10_000);
  const member = members.find((m) => m.record.name === machine);
  if (!member) throw new TmachineError(`machine "${machine}" is not a member of cluster "${cluster.name}"`, { hint: `members: ${members.map((m) => m.record.name).join(', ')}` });
  const manager = await requireHealthyManager(cluster, members);
  const nodes = await listNodes(manager.docker);
  const id = member.record.swarm?.nodeId;
  const node = nodes.find((n) => n.ID === id) ?? nodes.find((n) => n.Description?.Hostname === machine);
  if (!node) throw new TmachineError(`${machine} is not in the swarm's node list`, { hint: `add it with \`tmachine swarm join ${machine}\`` });
  const services = (await manager.docker.listServices()) as Array<{ ID: string; Spec: { Name: string } }>;
  const serviceName = new Map(services.map((s) => [s.ID, s.Spec.Name]));
  const tasks = (await manager.docker.listTasks({ filters: { node: [node.ID] } })) as Array<{
    ServiceID: string;
    Slot?: number;
    DesiredState: string;
    Spec?: { ContainerSpec?: { Image?: string } };
    Status: { State: string; Timestamp?: string; Err?: string };
  }>;
  return {
    machine,
    nodeId: node.ID,
    hostname: node.Description?.Hostname ?? '',
    role: node.Spec.Role,
    availability: node.Spec.Availability,
    status: node.Status?.State ?? 'unknown',
    address: node.Status?.Addr ?? '',
    managerStatus: node.ManagerStatus ? (node.ManagerStatus.Leader ? 'leader' : (node.ManagerStatus.Reachability ?? '')) : '',
    engine: node.Description?.Engine?.EngineVersion ?? '',
    labels: node.Spec.Labels ?? {},
    tasks: tasks
      .map((t) => ({
        name: `${serviceName.get(t.ServiceID) ?? t.ServiceID.slice(0, 12)}${t.Slot ? `.${t.Slot}` : ''}`,
        image: (t.Spec?.ContainerSpec?.Image ?? '').split('@')[0]!,
        desired: t.DesiredState,
        state: t.Status.State,
        since: t.Status.Timestamp ?? '',
        error: t.Status.Err ?? '',
      }))
      .sort((a, b) => a.name.localeCompare(b.name) || b.since.localeCompare(a.since)),
  };
}

export function formatNodeStatus(s: NodeStatus): string {
  const fields: Array<[string, string]> = [
    ['Machine', s.machine],
    ['ID', s.nodeId],
    ['Hostname', s.hostname],
    ['Role', s.role],
    ['Availability', s.availability],
    ['Status', s.status],
    ['Address', s.address],
    ['Manager Status', s.managerStatus || '-'],
    ['Engine Version', s.engine],
    ['Labels', Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '-'],
  ];
  const width = Math.max(...fields.map(([k]) => k.length)) + 2;
  const head = fields.map(([k, v]) => `${(k + ':').padEnd(width)}${v}`).join('\n');
  if (s.tasks.length === 0) return `${head}\n\nno tasks on this node`;
  return `${head}\n\n${table(['TASK', 'IMAGE', 'DESIRED', 'CURRENT', 'SINCE', 'ERROR'], s.tasks.map((t) => [t.name, t.image, t.desired, t.state, t.since, t.error]))}`;
}
