/** `swarm status` and the node table bootstrap ends with: the swarm as its managers see it. */
import { TmachineError } from '../errors.js';
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
  return {
    cluster: cluster.name,
    manager: manager.record.name,
    managersWanted: cluster.managers,
    nodes: nodes
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
      .sort((a, b) => (a.role === b.role ? a.machine.localeCompare(b.machine) : a.role === 'manager' ? -1 : 1)),
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
  const managers = status.nodes.filter((n) => n.role === 'manager');
  const reachable = managers.filter((n) => n.managerStatus === 'leader' || n.managerStatus === 'reachable').length;
  const lines = [nodeTable, '', `managers: ${reachable}/${managers.length} reachable (quorum needs ${Math.floor(managers.length / 2) + 1})`];
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
