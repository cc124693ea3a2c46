/**
 * Ordered emergency shutdown and the matching start, as DCCN's operations manual orders
 * them. Shutdown: record the deployed stacks and the managers, demote every manager but
 * one, remove the stacks, stop the workers' engines (and machines), then the last manager.
 * Start: the last manager first, then the others, wait for Ready, promote back to the
 * recorded managers, redeploy the recorded stacks in order (`--first` first). Nodes are
 * never removed, so their node IDs survive the round trip.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { z } from 'zod';
import { TmachineError } from '../../errors.js';
import { resolveClusterName, withClusterLock } from '../cluster-record.js';
import { runPlan, type Phase, type Plan, type PlanListener, type PlanReport } from '../../plan/index.js';
import type { Store } from '../../store/store.js';
import { requireCluster, stacksDir, type ClusterRecord } from '../cluster-record.js';
import { clusterMembers, healthyManager, type Member } from '../engines.js';
import { inspectNode, listNodes, updateNode } from '../membership.js';
import { memberNamed, onManager, openCluster, setRecordSwarm } from './cluster.js';
import { engineAnswers, pollUntil, startEngine, startMachine, stopEngine, stopMachine } from './host-engine.js';
import { deployStack } from './stacks.js';
import { shellQuote } from '../../../provision/os.js';

export const shutdownRecordSchema = z.object({
  cluster: z.string(),
  at: z.string(),
  /** The manager count the cluster had, and which machines were its managers. */
  managers: z.number().int(),
  managerNames: z.array(z.string()),
  /** The manager that stayed up to the end; started first. */
  lastManager: z.string(),
  /** Node IDs before the shutdown, so start can say whether they survived. */
  nodeIds: z.record(z.string(), z.string()),
  stacks: z.array(z.object({ name: z.string(), file: z.string(), order: z.number().int() })),
  /** True when the machines were stopped too (--machines), so start starts them. */
  machines: z.boolean(),
});
export type ShutdownRecord = z.infer<typeof shutdownRecordSchema>;

function shutdownFile(store: Store, cluster: string): string {
  // Beside the cluster's kept stack files (clusters/NAME/), outside the cluster record itself.
  return path.join(path.dirname(stacksDir(store, cluster)), 'shutdown.json');
}

export async function loadShutdownRecord(store: Store, cluster: string): Promise<ShutdownRecord | undefined> {
  const text = await fs.readFile(shutdownFile(store, cluster), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : shutdownRecordSchema.parse(JSON.parse(text));
}

async function saveShutdownRecord(store: Store, record: ShutdownRecord): Promise<void> {
  const file = shutdownFile(store, record.cluster);
  await store.ensureDir(path.dirname(file));
  await writeFileAtomic(file, JSON.stringify(shutdownRecordSchema.parse(record), null, 2) + '\n', { mode: 0o600 });
}

async function forgetShutdownRecord(store: Store, cluster: string): Promise<void> {
  await fs.rm(shutdownFile(store, cluster), { force: true });
}

export interface RunOptions {
  dryRun?: boolean;
  signal?: AbortSignal;
  listener?: PlanListener;
}

interface ShutdownContext {
  store: Store;
  cluster: ClusterRecord;
  members: Member[];
  leader: Member;
  record: ShutdownRecord;
}

const STACK_GONE_MS = 180_000;

/** `docker stack rm` returns at once; the stack is gone when its services and networks are. */
async function removeStacks(ctx: ShutdownContext, names: string[]): Promise<void> {
  await onManager(ctx.store, ctx.leader, async (run) => {
    for (const name of names) await run(`docker stack rm ${shellQuote(name)}`, { what: `docker stack rm ${name}` });
  });
  for (const name of names) {
    const filters = { label: [`com.docker.stack.namespace=${name}`] };
    await pollUntil(
      `stack ${name} being removed`,
      async () => {
        const services = (await ctx.leader.docker.listServices({ filters })) as unknown[];
        const networks = (await ctx.leader.docker.listNetworks({ filters })) as unknown[];
        return services.length === 0 && networks.length === 0 ? true : undefined;
      },
      STACK_GONE_MS,
    );
  }
}

function member(ctx: { members: Member[]; cluster: ClusterRecord }, name: string): Member {
  return memberNamed({ cluster: ctx.cluster, members: ctx.members, manager: ctx.members[0]! }, name);
}

/** The plan of `swarm shutdown`; refuses a cluster already shut down. */
export async function shutdownPlan(store: Store, clusterName: string | undefined, options: { machines: boolean }): Promise<{ plan: Plan<ShutdownContext>; context: ShutdownContext }> {
  const named = await requireCluster(store, clusterName);
  const previous = await loadShutdownRecord(store, named.name);
  if (previous) {
    throw new TmachineError(`cluster "${named.name}" was shut down at ${previous.at}`, { hint: `start it with \`tmachine swarm start${clusterName ? ` --cluster ${clusterName}` : ''}\`` });
  }
  const open = await openCluster(store, { cluster: named.name });
  const nodes = await listNodes(open.manager.docker);
  const nameOf = new Map<string, string>();
  for (const m of open.members) {
    const id = m.record.swarm?.nodeId ?? (await engineAnswers(m))?.nodeId;
    if (id) nameOf.set(id, m.record.name);
  }
  const leaderNode = nodes.find((n) => n.ManagerStatus?.Leader);
  const managerNames = nodes.filter((n) => n.Spec.Role === 'manager').map((n) => nameOf.get(n.ID)).filter((n): n is string => n !== undefined);
  // The leader stays up to the end: no election while the others go.
  const last = (leaderNode && nameOf.get(leaderNode.ID)) ?? open.manager.record.name;
  const leader = member(open, last);
  const cluster = open.cluster;
  const record: ShutdownRecord = {
    cluster: cluster.name,
    at: new Date().toISOString(),
    managers: cluster.managers,
    managerNames,
    lastManager: last,
    nodeIds: Object.fromEntries([...nameOf].map(([id, name]) => [name, id])),
    stacks: cluster.stacks.map((s, order) => ({ name: s.name, file: s.file, order })),
    machines: options.machines === true,
  };
  const others = cluster.nodes.map((n) => n.name).filter((n) => n !== last && open.members.some((m) => m.record.name === n));
  const otherManagers = managerNames.filter((n) => n !== last);
  const stackList = record.stacks.map((s) => s.name).join(', ') || 'none';
  const stopWhat = options.machines ? 'stop the engine, then the machine' : 'stop the engine';

  const phases: Phase<ShutdownContext>[] = [
    {
      id: 'record',
      title: `record ${record.stacks.length} stack(s) (${stackList}) and ${record.managers} manager(s)`,
      scope: { kind: 'cluster' },
      run: (ctx) => saveShutdownRecord(ctx.store, ctx.record),
    },
    {
      id: 'demote',
      title: 'demote to worker',
      describe: () => `demote to worker (${last} stays the last manager)`,
      scope: { kind: 'serial' },
      prepare: () => otherManagers,
      run: async (ctx, step) => {
        const m = member(ctx, step.host!);
        const id = ctx.record.nodeIds[m.record.name]!;
        await updateNode(ctx.leader.docker, id, (s) => ({ ...s, Role: 'worker' }));
        // Raft drops the member only after the demotion is applied; the next one waits for that.
        await pollUntil(`${m.record.name} leaving the managers`, async () => ((await inspectNode(ctx.leader.docker, id)).ManagerStatus ? undefined : true), 60_000, step.signal);
        await setRecordSwarm(ctx.store, m.record.name, { ...m.record.swarm, cluster: ctx.cluster.name, role: 'worker', nodeId: id });
      },
    },
    {
      id: 'remove-stacks',
      title: `remove stacks: ${stackList}`,
      scope: { kind: 'cluster' },
      needsRun: async () => record.stacks.length > 0,
      run: (ctx) => removeStacks(ctx, [...ctx.record.stacks].reverse().map((s) => s.name)),
    },
    {
      id: 'stop-others',
      title: stopWhat,
      scope: { kind: 'parallel' },
      prepare: () => others,
      run: async (ctx, step) => {
        const m = member(ctx, step.host!);
        if (await engineAnswers(m)) await stopEngine(ctx.store, m.record);
        if (ctx.record.machines) await stopMachine(ctx.store, m.record);
      },
    },
    {
      id: 'stop-last-manager',
      title: `${stopWhat} (last manager)`,
      scope: { kind: 'serial' },
      prepare: () => [last],
      run: async (ctx, step) => {
        const m = member(ctx, step.host!);
        if (await engineAnswers(m)) await stopEngine(ctx.store, m.record);
        if (ctx.record.machines) await stopMachine(ctx.store, m.record);
      },
    },
  ];
  return { plan: { title: 'swarm shutdown', hosts: [last, ...others], phases }, context: { store, cluster, members: open.members, leader, record } };
}

export async function shutdownCluster(store: Store, clusterName: string | undefined, options: RunOptions & { machines: boolean }): Promise<{ report: PlanReport; record: ShutdownRecord }> {
  const lockName = await resolveClusterName(store, clusterName);
  return withClusterLock(store, lockName, 'swarm shutdown', undefined, async () => {
    const { plan, context } = await shutdownPlan(store, clusterName, options);
    const report = await runPlan(plan, context, { ...(options.dryRun ? { dryRun: true } : {}), ...(options.signal ? { signal: options.signal } : {}), ...(options.listener ? { listener: options.listener } : {}) });
    return { report, record: context.record };
  });
}

interface StartContext {
  store: Store;
  cluster: ClusterRecord;
  members: Member[];
  record: ShutdownRecord;
  first?: string;
  /** The manager that answers once the last manager is back. */
  leader?: Member;
}

async function bringUp(ctx: StartContext, m: Member): Promise<void> {
  if (ctx.record.machines) await startMachine(ctx.store, m.record);
  if (!(await engineAnswers(m))) await startEngine(ctx.store, m.record);
}

function stackOrder(record: ShutdownRecord, first?: string): ShutdownRecord['stacks'] {
  const ordered = [...record.stacks].sort((a, b) => a.order - b.order);
  if (!first) return ordered;
  return [...ordered.filter((s) => s.name === first), ...ordered.filter((s) => s.name !== first)];
}

/** Every service of a stack has all its replicas running (global: one per eligible node is not checked). */
async function stackRunning(leader: Member, stack: string): Promise<true | undefined> {
  const services = (await leader.docker.listServices({ filters: { label: [`com.docker.stack.namespace=${stack}`] } })) as Array<{ ID: string; Spec: { Mode?: { Replicated?: { Replicas?: number } } } }>;
  if (services.length === 0) return undefined;
  const tasks = (await leader.docker.listTasks({ filters: { 'desired-state': ['running'], label: [`com.docker.stack.namespace=${stack}`] } })) as Array<{ ServiceID: string; Status: { State: string } }>;
  for (const s of services) {
    const running = tasks.filter((t) => t.ServiceID === s.ID && t.Status.State === 'running').length;
    const wanted = s.Spec.Mode?.Replicated?.Replicas ?? 1;
    if (running < Math.max(1, wanted)) return undefined;
  }
  return true;
}

const NODE_READY_MS = 180_000;

/** The plan of `swarm start`; needs a shutdown record. */
export async function startPlan(store: Store, clusterName: string | undefined, options: { first?: string }): Promise<{ plan: Plan<StartContext>; context: StartContext }> {
  const cluster = await requireCluster(store, clusterName);
  const record = await loadShutdownRecord(store, cluster.name);
  if (!record) {
    throw new TmachineError(`cluster "${cluster.name}" has no recorded shutdown to start from`, { hint: 'start single machines with `tmachine start NAME`; `tmachine swarm status` shows the swarm' });
  }
  if (options.first && !record.stacks.some((s) => s.name === options.first)) {
    throw new TmachineError(`stack "${options.first}" was not deployed when cluster "${cluster.name}" was shut down`, { hint: `recorded stacks: ${record.stacks.map((s) => s.name).join(', ') || 'none'}` });
  }
  const members = await clusterMembers(store, cluster, 10_000);
  const last = record.lastManager;
  const others = cluster.nodes.map((n) => n.name).filter((n) => n !== last && members.some((m) => m.record.name === n));
  const promote = record.managerNames.filter((n) => n !== last);
  const ordered = stackOrder(record, options.first);
  const startWhat = record.machines ? 'start the machine and its engine' : 'start the engine';
  const leaderOf = (ctx: StartContext): Member => {
    if (!ctx.leader) throw new TmachineError(`the last manager ${last} is not up`);
    return ctx.leader;
  };

  const phases: Phase<StartContext>[] = [
    {
      id: 'start-last-manager',
      title: `${startWhat} (last manager first), wait for it to lead`,
      scope: { kind: 'serial' },
      prepare: () => [last],
      run: async (ctx, step) => {
        const m = member(ctx, step.host!);
        await bringUp(ctx, m);
        ctx.leader = await pollUntil(`${last} leading the swarm`, async () => (await healthyManager([m]))?.manager, NODE_READY_MS, step.signal);
      },
    },
    {
      id: 'start-others',
      title: `${startWhat}, wait for the node to be Ready`,
      scope: { kind: 'parallel' },
      prepare: () => others,
      run: async (ctx, step) => {
        const m = member(ctx, step.host!);
        await bringUp(ctx, m);
        const id = ctx.record.nodeIds[m.record.name] ?? (await engineAnswers(m))?.nodeId;
        if (!id) throw new TmachineError(`${m.record.name} has no node ID`);
        await pollUntil(`${m.record.name} Ready`, async () => ((await inspectNode(leaderOf(ctx).docker, id)).Status?.State === 'ready' ? true : undefined), NODE_READY_MS, step.signal);
      },
    },
    {
      id: 'promote',
      title: 'promote back to manager',
      describe: () => `promote back to manager (the cluster had ${record.managers})`,
      scope: { kind: 'serial' },
      prepare: () => promote,
      run: async (ctx, step) => {
        const m = member(ctx, step.host!);
        const leader = leaderOf(ctx);
        const id = ctx.record.nodeIds[m.record.name]!;
        const node = await inspectNode(leader.docker, id);
        if (node.Spec.Role !== 'manager') await updateNode(leader.docker, id, (s) => ({ ...s, Role: 'manager' }));
        await pollUntil(`${m.record.name} reachable as manager`, async () => ((await inspectNode(leader.docker, id)).ManagerStatus?.Reachability === 'reachable' ? true : undefined), 120_000, step.signal);
        await setRecordSwarm(ctx.store, m.record.name, { ...m.record.swarm, cluster: ctx.cluster.name, role: 'manager', nodeId: id });
      },
    },
    {
      id: 'redeploy',
      title: `redeploy stacks in order: ${ordered.map((s) => s.name).join(', ') || 'none'}`,
      scope: { kind: 'cluster' },
      needsRun: async () => ordered.length > 0,
      run: async (ctx, step) => {
        for (const s of ordered) {
          step.report(`deploying ${s.name}`);
          await deployStack(ctx.store, s.file, s.name, ctx.cluster.name);
          // The first stack (a registry) must serve before the others pull from it.
          if (s.name === ctx.first) await pollUntil(`stack ${s.name} running`, () => stackRunning(leaderOf(ctx), s.name), NODE_READY_MS, step.signal);
        }
      },
    },
    {
      id: 'forget-shutdown',
      title: 'forget the shutdown record',
      scope: { kind: 'cluster' },
      run: (ctx) => forgetShutdownRecord(ctx.store, ctx.cluster.name),
    },
  ];
  return { plan: { title: 'swarm start', hosts: [last, ...others], phases }, context: { store, cluster, members, record, ...(options.first ? { first: options.first } : {}) } };
}

export async function startCluster(store: Store, clusterName: string | undefined, options: RunOptions & { first?: string }): Promise<{ report: PlanReport; record: ShutdownRecord }> {
  const lockName = await resolveClusterName(store, clusterName);
  return withClusterLock(store, lockName, 'swarm start', undefined, async () => {
    const { plan, context } = await startPlan(store, clusterName, options);
    const report = await runPlan(plan, context, { ...(options.dryRun ? { dryRun: true } : {}), ...(options.signal ? { signal: options.signal } : {}), ...(options.listener ? { listener: options.listener } : {}) });
    return { report, record: context.record };
  });
}

