/**
 * Engine handles for the members of a cluster, and finding a manager that can lead: all
 * swarm work goes through the engine API over TLS, never through SSH.
 */
import type Docker from 'dockerode';
import { withDeadline } from '../async.js';
import { clientTls, engineClient, type EngineTls } from '../engine/client.js';
import { TmachineError } from '../errors.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { registerSecret } from '../ui/redact.js';
import type { ClusterRecord } from './cluster-record.js';

export interface Member {
  record: MachineRecord;
  docker: Docker;
}

export interface SwarmInfo {
  nodeId: string;
  state: string; // inactive | pending | active | error | locked
  controlAvailable: boolean;
  clusterId: string;
  managers: number;
  nodes: number;
  error: string;
  /** "addr:port" of the managers this node talks to (workers have no cluster ID to compare). */
  remoteManagers: string[];
}

export async function swarmInfo(docker: Docker): Promise<SwarmInfo> {
  const info = (await docker.info()) as { Swarm?: Record<string, unknown> };
  const s = info.Swarm ?? {};
  const cluster = (s['Cluster'] ?? {}) as { ID?: string };
  return {
    nodeId: String(s['NodeID'] ?? ''),
    state: String(s['LocalNodeState'] ?? 'inactive'),
    controlAvailable: Boolean(s['ControlAvailable']),
    clusterId: cluster.ID ?? '',
    managers: Number(s['Managers'] ?? 0),
    nodes: Number(s['Nodes'] ?? 0),
    error: String(s['Error'] ?? ''),
    remoteManagers: ((s['RemoteManagers'] ?? []) as Array<{ Addr?: string }>).map((r) => r.Addr ?? '').filter(Boolean),
  };
}

export async function memberOf(store: Store, record: MachineRecord, tls?: EngineTls, timeoutMs = 30_000): Promise<Member> {
  return { record, docker: engineClient(record, tls ?? (await clientTls(store)), timeoutMs) };
}

export async function clusterMembers(store: Store, cluster: ClusterRecord, timeoutMs = 30_000): Promise<Member[]> {
  const tls = await clientTls(store);
  const out: Member[] = [];
  for (const node of cluster.nodes) {
    if (!(await store.exists(node.name))) continue;
    out.push(await memberOf(store, await store.load(node.name), tls, timeoutMs));
  }
  return out;
}

/** The address other members use: the private one where the driver has one (SPEC §4). */
export function advertiseAddress(record: MachineRecord, advertise: 'private' | 'public' = 'private'): string {
  return advertise === 'private' ? (record.addresses.private ?? record.addresses.public) : record.addresses.public;
}

/** Of the given candidates, a manager whose engine answers and can run control-plane calls (has quorum). */
export async function healthyManager(candidates: Member[], probeMs = 5_000): Promise<{ manager: Member; info: SwarmInfo } | undefined> {
  const probes = await Promise.all(
    candidates.map(async (m) => {
      try {
        const info = await withDeadline(swarmInfo(m.docker), probeMs);
        if (info.state !== 'active' || !info.controlAvailable) return undefined;
        // A manager without quorum still says ControlAvailable; listing nodes needs a leader.
        await withDeadline(m.docker.listNodes(), probeMs);
        return { manager: m, info };
      } catch {
        return undefined;
      }
    }),
  );
  return probes.find((p) => p !== undefined);
}

export interface JoinTokens {
  worker: string;
  manager: string;
}

export async function joinTokens(manager: Member): Promise<JoinTokens> {
  const swarm = (await manager.docker.swarmInspect()) as { JoinTokens?: { Worker?: string; Manager?: string } };
  const tokens = { worker: swarm.JoinTokens?.Worker ?? '', manager: swarm.JoinTokens?.Manager ?? '' };
  registerSecret(tokens.worker);
  registerSecret(tokens.manager);
  if (!tokens.worker || !tokens.manager) throw new TmachineError(`manager ${manager.record.name} did not return join tokens`);
  return tokens;
}

/** Docker's error bodies come back as "(HTTP code 503) unexpected - <message>"; keep the message. */
export function engineMessage(error: unknown): string {
  const e = error as { json?: { message?: string }; message?: string };
  return (e?.json?.message ?? e?.message ?? String(error)).split('\n')[0]!;
}
