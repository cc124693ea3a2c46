/**
 * Swarm membership operations on engines (init, join, leave, role, labels, availability),
 * each a small function the converge steps and the `swarm` commands share.
 */
import type Docker from 'dockerode';
import { TmachineError } from '../errors.js';
import { backoff } from '../net.js';
import { debug } from '../ui/log.js';
import { advertiseAddress, engineMessage, joinTokens, swarmInfo, type Member } from './engines.js';

export const SWARM_PORT = 2377;

export interface NodeSpec {
  Name?: string;
  Role: 'manager' | 'worker';
  Availability: 'active' | 'pause' | 'drain';
  Labels?: Record<string, string>;
}

interface SwarmNode {
  ID: string;
  Version: { Index: number };
  Spec: NodeSpec;
  Description?: { Hostname?: string; Engine?: { EngineVersion?: string } };
  Status?: { State?: string; Addr?: string; Message?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string; Addr?: string };
}
export type { SwarmNode };

export interface InitOptions {
  advertise: 'private' | 'public';
  dataPathPort?: number;
  forceNewCluster?: boolean;
}

export async function initSwarm(member: Member, options: InitOptions): Promise<void> {
  const addr = advertiseAddress(member.record, options.advertise);
  debug('swarm', `init on ${member.record.name} advertising ${addr}`);
  await member.docker
    .swarmInit({
      ListenAddr: `0.0.0.0:${SWARM_PORT}`,
      AdvertiseAddr: `${addr}:${SWARM_PORT}`,
      DataPathAddr: addr,
      ...(options.dataPathPort ? { DataPathPort: options.dataPathPort } : {}),
      ...(options.forceNewCluster ? { ForceNewCluster: true } : {}),
    })
    .catch((error: unknown) => {
      throw new TmachineError(`swarm init on ${member.record.name} failed: ${engineMessage(error)}`);
    });
}

/** Joins `member` to the swarm `leader` manages; a node stuck half-joined leaves first. */
export async function joinSwarm(member: Member, leader: Member, role: 'manager' | 'worker', advertise: 'private' | 'public'): Promise<void> {
  const info = await swarmInfo(member.docker);
  if (info.state === 'pending' || info.state === 'error' || info.state === 'active') {
    debug('swarm', `${member.record.name} is ${info.state}; leaving before joining`);
    await member.docker.swarmLeave({ force: true }).catch(() => undefined);
  }
  const tokens = await joinTokens(leader);
  const addr = advertiseAddress(member.record, advertise);
  await member.docker
    .swarmJoin({
      ListenAddr: `0.0.0.0:${SWARM_PORT}`,
      AdvertiseAddr: `${addr}:${SWARM_PORT}`,
      DataPathAddr: addr,
      RemoteAddrs: [`${advertiseAddress(leader.record, advertise)}:${SWARM_PORT}`],
      JoinToken: role === 'manager' ? tokens.manager : tokens.worker,
    })
    .catch((error: unknown) => {
      throw new TmachineError(`${member.record.name} could not join the swarm as ${role}: ${engineMessage(error)}`);
    });
}

export async function leaveSwarm(member: Member, force: boolean): Promise<void> {
  await member.docker.swarmLeave({ force }).catch((error: unknown) => {
    const message = engineMessage(error);
    if (/not part of a swarm/i.test(message)) return;
    throw new TmachineError(`${member.record.name} could not leave the swarm: ${message}`, {
      hint: /quorum|last manager/i.test(message) ? 'pass --force if you mean to break the swarm' : undefined,
    });
  });
}

export async function listNodes(leader: Docker): Promise<SwarmNode[]> {
  return (await leader.listNodes()) as SwarmNode[];
}

export async function inspectNode(leader: Docker, nodeId: string): Promise<SwarmNode> {
  return (await leader.getNode(nodeId).inspect()) as SwarmNode;
}

/** Read-modify-write of a node's spec with the version the API demands (optimistic locking). */
export async function updateNode(leader: Docker, nodeId: string, change: (spec: NodeSpec) => NodeSpec): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await inspectNode(leader, nodeId);
    try {
      await leader.getNode(nodeId).update({ _query: { version: node.Version.Index }, _body: change({ ...node.Spec }) });
      return;
    } catch (error) {
      // "update out of sequence": someone else changed the node; read again.
      if (!/out of sequence/i.test(engineMessage(error))) throw new TmachineError(`updating node ${nodeId} failed: ${engineMessage(error)}`);
    }
  }
  throw new TmachineError(`updating node ${nodeId} kept conflicting with other changes`);
}

export function labelsHold(current: Record<string, string> | undefined, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([k, v]) => current?.[k] === v);
}

/** Polls the leader until the node reports Ready (join completed), within a deadline. */
export async function waitNodeReady(leader: Docker, nodeId: string, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  let last = '';
  while (Date.now() < end) {
    const node = await inspectNode(leader, nodeId).catch(() => undefined);
    last = node?.Status?.State ?? 'unknown';
    if (last === 'ready') return;
    await backoff(300);
  }
  throw new TmachineError(`node ${nodeId} did not become Ready within ${deadlineMs / 1000}s (state: ${last})`);
}
