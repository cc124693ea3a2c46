/**
 * Rolling engine upgrade of a swarm: one node at a time (workers in batches of --batch),
 * each drained, upgraded through the ordinary provisioning (same steps as `tmachine
 * upgrade`), waited for until it is Ready again with its tasks rescheduled, then activated.
 * Managers go first, the leader last, and only while the others keep quorum. The plan stops
 * at the first node that does not come back, and names it.
 */
import { resolveBundle, type ResolvedBundle } from '../../engine/bundle.js';
import { TmachineError } from '../../errors.js';
import { provisionMachines } from '../../machine/plans.js';
import { resolveClusterName, withClusterLock } from '../cluster-record.js';
import { runPlan, type Phase, type Plan, type PlanReport } from '../../plan/index.js';
import type { EngineOptions } from '../../store/machine-record.js';
import type { Store } from '../../store/store.js';
import type { ClusterRecord } from '../cluster-record.js';
import { healthyManager, type Member } from '../engines.js';
import { inspectNode, listNodes, updateNode, type SwarmNode } from '../membership.js';
import { memberNamed, openCluster } from './cluster.js';
import { engineAnswers, pollUntil } from './host-engine.js';
import type { RunOptions } from './shutdown.js';

export interface UpgradeTarget {
  bundle?: string;
  version?: string;
  batch: number;
  force: boolean;
}

interface UpgradeContext {
  store: Store;
  cluster: ClusterRecord;
  members: Member[];
  managerNames: string[];
  nodeIds: Map<string, string>;
  bundle: ResolvedBundle;
}

const BACK_MS = 240_000;
const RESCHEDULE_MS = 180_000;

function quorumOf(managers: number): number {
  return Math.floor(managers / 2) + 1;
}

/** A manager with control other than `except` (the one being upgraded). */
async function controller(ctx: UpgradeContext, except?: string): Promise<Member> {
  const candidates = ctx.members.filter((m) => ctx.managerNames.includes(m.record.name) && m.record.name !== except);
  const found = await pollUntil('a manager with control', async () => (await healthyManager(candidates))?.manager, 60_000);
  return found;
}

interface ServiceCount {
  id: string;
  name: string;
  running: number;
}

async function replicatedRunning(manager: Member): Promise<ServiceCount[]> {
  const services = (await manager.docker.listServices()) as Array<{ ID: string; Spec: { Name: string; Mode?: { Replicated?: { Replicas?: number } } } }>;
  const tasks = (await manager.docker.listTasks({ filters: { 'desired-state': ['running'] } })) as Array<{ ServiceID: string; Status: { State: string } }>;
  return services
    .filter((s) => s.Spec.Mode?.Replicated)
    .map((s) => ({ id: s.ID, name: s.Spec.Name, running: tasks.filter((t) => t.ServiceID === s.ID && t.Status.State === 'running').length }));
}

function upgradedEngine(bundle: ResolvedBundle): (current: EngineOptions) => EngineOptions {
  return (current) => {
    const next: EngineOptions = { ...current, install: 'bundle', bundleSha256: bundle.sha256 };
    delete next.bundle;
    if (bundle.version) next.version = bundle.version;
    else delete next.version;
    return next;
  };
}

/** One node: drain, upgrade, wait Ready (and reachable, for a manager), wait for its tasks elsewhere, activate. */
async function upgradeNode(ctx: UpgradeContext, name: string, signal: AbortSignal, report: (m: string) => void): Promise<void> {
  const id = ctx.nodeIds.get(name);
  if (!id) throw new TmachineError(`${name} has no swarm node ID`, { hint: `check \`tmachine swarm status\`` });
  const isManager = ctx.managerNames.includes(name);
  let manager = await controller(ctx, name);
  if (isManager) {
    const nodes = await listNodes(manager.docker);
    const managers = nodes.filter((n) => n.Spec.Role === 'manager');
    const othersUp = managers.filter((n) => n.ID !== id && (n.ManagerStatus?.Leader || n.ManagerStatus?.Reachability === 'reachable')).length;
    if (othersUp < quorumOf(managers.length)) {
      throw new TmachineError(`upgrading ${name} now would leave ${othersUp} of ${managers.length} managers up, below the quorum of ${quorumOf(managers.length)}`, {
        hint: 'bring the other managers back first',
      });
    }
  }
  const before = new Map((await replicatedRunning(manager)).map((s) => [s.id, s]));
  report('draining');
  await updateNode(manager.docker, id, (s) => ({ ...s, Availability: 'drain' }));
  await pollUntil(
    `${name}'s tasks moving to other nodes`,
    async () => {
      const tasks = (await manager.docker.listTasks({ filters: { node: [id], 'desired-state': ['running'] } })) as unknown[];
      if (tasks.length > 0) return undefined;
      const now = await replicatedRunning(manager);
      return now.every((s) => s.running >= (before.get(s.id)?.running ?? 0)) ? true : undefined;
    },
    RESCHEDULE_MS,
    signal,
  ).catch((error: unknown) => {
    throw new TmachineError(`the upgrade stopped at ${name}: ${(error as Error).message}`, { hint: `its tasks could not run elsewhere; \`tmachine swarm activate ${name}\` puts it back` });
  });

  report(`installing engine ${ctx.bundle.version ?? ''} (bundle ${ctx.bundle.sha256.slice(0, 12)})`);
  await provisionMachines(ctx.store, [name], { engine: upgradedEngine(ctx.bundle), progress: 'silent', signal });

  report('waiting for the node to come back');
  const member = memberNamed({ cluster: ctx.cluster, members: ctx.members, manager }, name);
  try {
    await pollUntil(`${name}'s engine`, async () => ((await engineAnswers(member))?.state === 'active' ? true : undefined), BACK_MS, signal);
    manager = await controller(ctx, isManager ? name : undefined);
    await pollUntil(
      `${name} Ready`,
      async () => {
        const node: SwarmNode = await inspectNode(manager.docker, id);
        if (node.Status?.State !== 'ready') return undefined;
        if (isManager && !(node.ManagerStatus?.Leader || node.ManagerStatus?.Reachability === 'reachable')) return undefined;
        return true;
      },
      BACK_MS,
      signal,
    );
  } catch (error) {
    throw new TmachineError(`the upgrade stopped at ${name}: it did not come back (${(error as Error).message})`, {
      hint: `look at \`tmachine ssh ${name} sudo journalctl -u docker\`; the nodes after it are still on the old engine`,
    });
  }
  await updateNode(manager.docker, id, (s) => ({ ...s, Availability: 'active' }));
}

export async function upgradePlan(store: Store, clusterName: string | undefined, target: UpgradeTarget): Promise<{ plan: Plan<UpgradeContext>; context: UpgradeContext }> {
  if (!target.bundle && !target.version) throw new TmachineError('swarm upgrade needs --engine-bundle FILE or --engine-version V');
  if (!Number.isInteger(target.batch) || target.batch < 1) throw new TmachineError(`--batch must be a positive whole number, not ${target.batch}`);
  const open = await openCluster(store, { ...(clusterName ? { cluster: clusterName } : {}) });
  const bundle = await resolveBundle({ cacheDir: store.cacheDir, report: () => undefined, ...(target.bundle ? { source: target.bundle } : {}), ...(target.version ? { version: target.version } : {}) });
  const nodes = await listNodes(open.manager.docker);
  const nodeIds = new Map<string, string>();
  for (const m of open.members) {
    const id = m.record.swarm?.nodeId ?? (await engineAnswers(m))?.nodeId;
    if (id && nodes.some((n) => n.ID === id)) nodeIds.set(m.record.name, id);
  }
  const nameOf = (n: SwarmNode) => [...nodeIds].find(([, id]) => id === n.ID)?.[0];
  const down = nodes.filter((n) => n.Status?.State !== 'ready').map((n) => nameOf(n) ?? n.Description?.Hostname ?? n.ID);
  if (down.length > 0 && !target.force) {
    throw new TmachineError(`not every node is Ready (${down.join(', ')}), so a rolling upgrade could lose more than one node at a time`, { hint: 'bring them back first, or pass --force' });
  }
  const managerNodes = nodes.filter((n) => n.Spec.Role === 'manager');
  if (managerNodes.length < 3 && !target.force) {
    throw new TmachineError(`cluster "${open.cluster.name}" has ${managerNodes.length} manager(s): upgrading one leaves the swarm without quorum while its engine restarts`, {
      hint: 'add managers first (3 keep quorum through the upgrade), or pass --force to accept the control-plane outage',
    });
  }
  // Followers first, the leader last: one election at most.
  const leaderName = managerNodes.filter((n) => n.ManagerStatus?.Leader).map(nameOf)[0];
  const managerNames = [
    ...managerNodes
      .map(nameOf)
      .filter((n): n is string => n !== undefined && n !== leaderName)
      .sort(),
    ...(leaderName ? [leaderName] : []),
  ];
  const workerNames = nodes
    .filter((n) => n.Spec.Role === 'worker')
    .map(nameOf)
    .filter((n): n is string => n !== undefined)
    .sort();
  const needsRun = async (ctx: UpgradeContext, host: string | undefined) => (await ctx.store.load(host!)).engine.bundleSha256 !== ctx.bundle.sha256;
  const describe = () => `drain, install engine ${bundle.version ?? ''} (bundle ${bundle.sha256.slice(0, 12)}), wait Ready and tasks rescheduled, activate`;
  const phases: Phase<UpgradeContext>[] = [
    {
      id: 'upgrade-managers',
      title: 'upgrade manager (one at a time, quorum kept)',
      scope: { kind: 'serial' },
      prepare: () => managerNames,
      needsRun: (ctx, run) => needsRun(ctx, run.host),
      describe,
      run: (ctx, run) => upgradeNode(ctx, run.host!, run.signal, run.report),
    },
    {
      id: 'upgrade-workers',
      title: `upgrade worker (${target.batch} at a time)`,
      scope: { kind: 'batches', size: target.batch },
      prepare: () => workerNames,
      needsRun: (ctx, run) => needsRun(ctx, run.host),
      describe,
      run: (ctx, run) => upgradeNode(ctx, run.host!, run.signal, run.report),
    },
  ];
  return {
    plan: { title: 'swarm upgrade', hosts: [...managerNames, ...workerNames], phases },
    context: { store, cluster: open.cluster, members: open.members, managerNames, nodeIds, bundle },
  };
}

export async function upgradeCluster(store: Store, clusterName: string | undefined, target: UpgradeTarget, options: RunOptions): Promise<{ report: PlanReport; bundle: ResolvedBundle; cluster: string }> {
  const lockName = await resolveClusterName(store, clusterName);
  return withClusterLock(store, lockName, 'swarm upgrade', undefined, async () => {
    const { plan, context } = await upgradePlan(store, clusterName, target);
    const report = await runPlan(plan, context, { continueOnHostError: false, ...(options.dryRun ? { dryRun: true } : {}), ...(options.signal ? { signal: options.signal } : {}), ...(options.listener ? { listener: options.listener } : {}) });
    return { report, bundle: context.bundle, cluster: context.cluster.name };
  });
}
