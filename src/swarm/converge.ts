/**
 * The swarm half of `swarm bootstrap`: small named steps, each able to say whether it needs
 * to run (k0sctl's phases), so a second run changes nothing and a half-finished run is
 * completed rather than repeated.
 */
import { TmachineError } from '../errors.js';
import type { Step } from '../steps.js';
import { advertiseAddress, engineMessage, healthyManager, swarmInfo, type Member } from './engines.js';
import { initSwarm, inspectNode, joinSwarm, labelsHold, listNodes, SWARM_PORT, updateNode, waitNodeReady } from './membership.js';
import type { DesiredNode } from './desired-state.js';

export interface ConvergeContext {
  members: Map<string, Member>;
  advertise: 'private' | 'public';
  dataPathPort?: number;
  /** Managers in the order they were listed; the first one initialises a new swarm. */
  managerNames: string[];
  /** Set once a manager with control is known. */
  leader?: Member;
  clusterId?: string;
}

function member(ctx: ConvergeContext, name: string): Member {
  const m = ctx.members.get(name);
  if (!m) throw new TmachineError(`machine "${name}" is not part of this bootstrap`);
  return m;
}

/**
 * The leader: a listed manager that is active and has control; failing that, any member that
 * has control (a swarm formed by hand whose manager is listed here as a worker is adopted,
 * and the role steps then make the roles what the cluster lists).
 */
async function findLeader(ctx: ConvergeContext): Promise<Member | undefined> {
  if (ctx.leader) return ctx.leader;
  const managers = ctx.managerNames.map((n) => member(ctx, n));
  const others = [...ctx.members.values()].filter((m) => !managers.includes(m));
  const found = (await healthyManager(managers)) ?? (others.length > 0 ? await healthyManager(others) : undefined);
  if (found) {
    ctx.leader = ctx.members.get(found.manager.record.name)!;
    ctx.clusterId = found.info.clusterId;
  }
  return ctx.leader;
}

/** Socket errors of an engine call: which engine (by address) did not answer. */
interface SocketError {
  code?: string;
  address?: string;
  port?: number;
}
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ESOCKETTIMEDOUT']);

/**
 * A swarm step that fails on something other than tmachine's own error (an engine that
 * stopped answering, say) still ends in one line that names the host, the step, and the
 * engine that did not answer, rather than a bare "connect ECONNREFUSED 10.0.0.11:2376".
 */
function guarded(host: string, step: Step<ConvergeContext>): Step<ConvergeContext> {
  const explain = (ctx: ConvergeContext, error: unknown): never => {
    if (error instanceof TmachineError) throw error;
    const socket = error as SocketError;
    let message = engineMessage(error);
    if (socket?.code && UNREACHABLE.has(socket.code)) {
      const owner = [...ctx.members.values()].find((m) => socket.address !== undefined && [m.record.addresses.public, m.record.addresses.private].includes(socket.address));
      const where = socket.address ? `${socket.address}${socket.port ? `:${socket.port}` : ''}` : 'its address';
      message = `the engine of ${owner ? owner.record.name : 'a member'} (${where}) did not answer (${socket.code})`;
    }
    throw new TmachineError(`step "${step.title}" failed on ${host}: ${message}`, {
      cause: error,
      hint: 'run the same command again once the host answers; `tmachine swarm status` shows the swarm',
    });
  };
  return {
    ...step,
    needsRun: (ctx) => step.needsRun(ctx).catch((error: unknown) => explain(ctx, error)),
    run: (ctx, report) => step.run(ctx, report).catch((error: unknown) => explain(ctx, error)),
  };
}

async function leaderOrFail(ctx: ConvergeContext): Promise<Member> {
  const leader = await findLeader(ctx);
  if (!leader) throw new TmachineError('no manager of this swarm answers with control', { hint: 'check `tmachine swarm status`; `tmachine swarm recover` rebuilds lost quorum' });
  return leader;
}

export function initStep(first: string): Step<ConvergeContext> {
  return guarded(first, {
    id: 'swarm-init',
    title: "swarm init",
    needsRun: async (ctx) => (await findLeader(ctx)) === undefined,
    run: async (ctx) => {
      const m = member(ctx, first);
      const info = await swarmInfo(m.docker);
      if (info.state === 'active') {
        throw new TmachineError(`${first} is already in a swarm whose managers have no quorum`, { hint: '`tmachine swarm recover` rebuilds it' });
      }
      await initSwarm(m, { advertise: ctx.advertise, ...(ctx.dataPathPort ? { dataPathPort: ctx.dataPathPort } : {}) });
      ctx.leader = m;
      ctx.clusterId = (await swarmInfo(m.docker)).clusterId;
    },
  });
}

/**
 * True when the node is an active member of the leader's swarm: active in its own view AND
 * known to the leader (a manager restarted after `swarm recover` is neither). A node of
 * another swarm is never taken over.
 */
async function isMember(ctx: ConvergeContext, m: Member): Promise<boolean> {
  const info = await swarmInfo(m.docker);
  if (info.state !== 'active') return false;
  const leader = await findLeader(ctx);
  if (!leader || leader === m) return true;
  const ours = new Set([...ctx.members.values()].map((x) => `${advertiseAddress(x.record, ctx.advertise)}:${SWARM_PORT}`));
  const foreign = (info.clusterId && ctx.clusterId && info.clusterId !== ctx.clusterId) || (info.remoteManagers.length > 0 && !info.remoteManagers.some((a) => ours.has(a)));
  if (foreign) {
    throw new TmachineError(`${m.record.name} belongs to another swarm`, { hint: `make it leave first: \`tmachine ssh ${m.record.name} -- docker swarm leave --force\`` });
  }
  return (await inspectNode(leader.docker, info.nodeId).catch(() => undefined)) !== undefined;
}

export function joinStep(node: DesiredNode): Step<ConvergeContext> {
  return guarded(node.name, {
    id: `swarm-join-${node.role}`,
    title: `join the swarm as ${node.role}`,
    needsRun: async (ctx) => {
      if (ctx.leader === member(ctx, node.name)) return false;
      return !(await isMember(ctx, member(ctx, node.name)));
    },
    run: async (ctx) => {
      const leader = await leaderOrFail(ctx);
      const m = member(ctx, node.name);
      await joinSwarm(m, leader, node.role, ctx.advertise);
      const info = await swarmInfo(m.docker);
      await waitNodeReady(leader.docker, info.nodeId);
    },
  });
}

export function roleStep(node: DesiredNode): Step<ConvergeContext> {
  const nodeId = async (ctx: ConvergeContext) => (await swarmInfo(member(ctx, node.name).docker)).nodeId;
  return guarded(node.name, {
    id: 'swarm-role',
    title: `role ${node.role}`,
    needsRun: async (ctx) => {
      const leader = await findLeader(ctx);
      if (!leader) return true;
      const current = await inspectNode(leader.docker, await nodeId(ctx)).catch(() => undefined);
      return current?.Spec.Role !== node.role;
    },
    run: async (ctx) => {
      const leader = await leaderOrFail(ctx);
      await updateNode(leader.docker, await nodeId(ctx), (spec) => ({ ...spec, Role: node.role }));
    },
  });
}

export function labelStep(node: DesiredNode): Step<ConvergeContext> {
  const nodeId = async (ctx: ConvergeContext) => (await swarmInfo(member(ctx, node.name).docker)).nodeId;
  return guarded(node.name, {
    id: 'swarm-labels',
    title: "node labels",
    needsRun: async (ctx) => {
      if (Object.keys(node.labels).length === 0) return false;
      const leader = await findLeader(ctx);
      if (!leader) return true;
      const current = await inspectNode(leader.docker, await nodeId(ctx)).catch(() => undefined);
      return !labelsHold(current?.Spec.Labels, node.labels);
    },
    run: async (ctx) => {
      const leader = await leaderOrFail(ctx);
      await updateNode(leader.docker, await nodeId(ctx), (spec) => ({ ...spec, Labels: { ...spec.Labels, ...node.labels } }));
    },
  });
}

/** Nodes in the swarm that the desired cluster no longer lists: drained, then removed (--prune). */
export function pruneStep(keep: Set<string>, extra: Map<string, Member>): Step<ConvergeContext> {
  const strangers = async (ctx: ConvergeContext) => {
    const leader = await findLeader(ctx);
    if (!leader) return [];
    const keepIds = new Set<string>();
    for (const name of keep) {
      const m = ctx.members.get(name);
      if (m) keepIds.add((await swarmInfo(m.docker).catch(() => undefined))?.nodeId ?? '');
    }
    return (await listNodes(leader.docker)).filter((n) => !keepIds.has(n.ID));
  };
  return {
    id: 'swarm-prune',
    title: 'prune nodes no longer listed',
    needsRun: async (ctx) => (await strangers(ctx)).length > 0,
    run: async (ctx, report) => {
      const leader = await leaderOrFail(ctx);
      for (const node of await strangers(ctx)) {
        const name = node.Description?.Hostname ?? node.ID;
        report(`draining ${name}`);
        if (node.Spec.Role === 'manager') await updateNode(leader.docker, node.ID, (s) => ({ ...s, Role: 'worker' }));
        await updateNode(leader.docker, node.ID, (s) => ({ ...s, Availability: 'drain' }));
        const machine = [...extra.values()].find((m) => m.record.swarm?.nodeId === node.ID);
        if (machine) await machine.docker.swarmLeave({ force: true }).catch(() => undefined);
        // A node that left (or is gone) shows Down; only then may it be removed without --force.
        await leader.docker
          .getNode(node.ID)
          .remove({ force: true })
          .catch((error: unknown) => {
            throw new TmachineError(`removing node ${name} failed: ${engineMessage(error)}`);
          });
      }
    },
  };
}
