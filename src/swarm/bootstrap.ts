/**
 * `swarm bootstrap`: converge the real cluster towards the desired one. Machines that are
 * missing are created (in parallel), existing ones provisioned, then the swarm steps run:
 * init on the first manager, managers join one at a time, workers in parallel, roles,
 * labels, and with --prune the removal of nodes no longer listed.
 */
import { TmachineError } from '../errors.js';
import { createTask, prepareCreate, sharedEngineSource, type CreateTimings, type PreparedCreate } from '../machine/create.js';
import { connectMachine } from '../machine/connect.js';
import { provisionMachines } from '../machine/provision.js';
import type { StepResult, Step } from '../steps.js';
import type { Store } from '../store/store.js';
import { info, warn } from '../ui/log.js';
import { runTasks, stepTasks, type UiTask } from '../ui/progress.js';
import { loadCluster, saveCluster, type ClusterRecord } from './cluster-record.js';
import { initStep, joinStep, labelStep, pruneStep, roleStep, type ConvergeContext } from './converge.js';
import type { DesiredCluster } from './desired-state.js';
import { memberOf, swarmInfo, type Member } from './engines.js';
import { clientTls } from '../engine/client.js';

export interface BootstrapOptions {
  dryRun?: boolean;
  prune?: boolean;
  keepOnFailure?: boolean;
  silent?: boolean;
}

export interface BootstrapReport {
  created: string[];
  /** Per host, the outcome of every step. */
  steps: Map<string, StepResult[]>;
  /** Nothing needed to change anywhere. */
  unchanged: boolean;
  timings: {
    /** Per created machine: making the host, reaching SSH, installing the engine. */
    machines: Record<string, CreateTimings>;
    /** Wall time of creating/provisioning all machines (in parallel). */
    machinesWallMs: number;
    /** Wall time of the swarm steps (init, joins, roles, labels). */
    swarmMs: number;
    totalMs: number;
  };
}

export async function bootstrapCluster(store: Store, desired: DesiredCluster, options: BootstrapOptions = {}): Promise<BootstrapReport> {
  const managers = desired.nodes.filter((n) => n.role === 'manager');
  if (managers.length === 0) throw new TmachineError('a swarm needs at least one manager', { hint: 'pass --managers 1 (or 3)' });

  // Everything checkable is checked before anything is made.
  const missing: PreparedCreate[] = [];
  const existing: string[] = [];
  for (const node of desired.nodes) {
    if (await store.exists(node.name)) {
      existing.push(node.name);
      continue;
    }
    if (!node.create) throw new TmachineError(`machine "${node.name}" does not exist`, { hint: 'create it first, or let bootstrap create it with --driver' });
    const engine = { ...desired.engine, opts: desired.engine.opts ?? [], port: 2376 };
    missing.push(
      await prepareCreate(store, {
        name: node.name,
        driver: node.create.driver,
        driverFlags: node.create.options,
        engine: engine as PreparedCreate['engine'],
        keepOnFailure: options.keepOnFailure ?? false,
        swarm: { cluster: desired.name, role: node.role },
      }),
    );
  }
  const previous = await loadCluster(store, desired.name);
  const steps = new Map<string, StepResult[]>();
  const started = Date.now();
  const createTimings = new Map<string, CreateTimings>();

  if (options.dryRun) {
    for (const p of missing) {
      steps.set(p.request.name, [
        { id: 'create', title: `create with the ${p.definition.name} driver`, outcome: 'would-run' },
        { id: 'provision', title: 'provision the engine', outcome: 'would-run' },
        { id: `swarm-join-${p.request.swarm?.role ?? 'worker'}`, title: `join the swarm as ${p.request.swarm?.role ?? 'worker'}`, outcome: 'would-run' },
      ]);
    }
  } else if (missing.length > 0) {
    const source = sharedEngineSource(store, missing[0]!.engine, info);
    await runTasks(
      missing.map((p) => createTask(store, p, source, createTimings)),
      { concurrent: true, continueOnError: true, silent: options.silent ?? false },
    );
    for (const p of missing) steps.set(p.request.name, [{ id: 'create', title: 'create and provision', outcome: 'done' }]);
  }
  if (existing.length > 0) {
    const provisioned = await provisionMachines(store, existing, { dryRun: options.dryRun ?? false, silent: options.silent ?? false });
    for (const [name, results] of provisioned) steps.set(name, [...results]);
  }

  const machinesWallMs = Date.now() - started;
  // Existing machines may not be known as members yet; from here on they are.
  const members = new Map<string, Member>();
  const tls = options.dryRun && missing.length > 0 ? undefined : await clientTls(store);
  for (const node of desired.nodes) {
    if (!(await store.exists(node.name))) continue;
    const record = options.dryRun
      ? await store.load(node.name)
      : await store.update(node.name, (r) => {
          r.swarm = { ...r.swarm, cluster: desired.name, role: node.role };
        });
    members.set(node.name, await memberOf(store, record, tls));
  }
  const cluster: ClusterRecord = {
    name: desired.name,
    createdAt: previous?.createdAt ?? new Date().toISOString(),
    managers: managers.length,
    nodes: desired.nodes.map((n) => ({ name: n.name, role: n.role })),
    swarm: { advertise: desired.swarm.advertise, encryptedOverlay: desired.swarm.encryptedOverlay, ...(desired.swarm.dataPathPort ? { dataPathPort: desired.swarm.dataPathPort } : {}), ...(desired.swarm.mtu ? { mtu: desired.swarm.mtu } : {}) },
    stacks: previous?.stacks ?? [],
  };
  if (!options.dryRun) await saveCluster(store, cluster);

  const context: ConvergeContext = {
    members,
    advertise: desired.swarm.advertise,
    ...(desired.swarm.dataPathPort ? { dataPathPort: desired.swarm.dataPathPort } : {}),
    managerNames: managers.map((m) => m.name).filter((n) => members.has(n)),
  };
  const present = desired.nodes.filter((n) => members.has(n.name));
  const [first, ...otherManagers] = present.filter((n) => n.role === 'manager');
  const workers = present.filter((n) => n.role === 'worker');
  const swarmResults = (name: string) => {
    const list = steps.get(name) ?? [];
    steps.set(name, list);
    return list;
  };
  const dry = options.dryRun ?? false;
  const phase = (name: string, nodeSteps: Step<ConvergeContext>[]): UiTask[] => stepTasks(name, context, nodeSteps, swarmResults(name), dry);
  const tasks: UiTask[] = [];
  if (first) tasks.push(...phase(first.name, [initStep(first.name)]));
  for (const m of otherManagers) tasks.push(...phase(m.name, [joinStep(m)]));
  if (workers.length > 0) {
    tasks.push({
      title: `join ${workers.length} worker${workers.length > 1 ? 's' : ''}`,
      run: (ui) => ui.subtasks(workers.flatMap((w) => [{ title: `${w.name}: join`, run: (wui) => wui.subtasks(phase(w.name, [joinStep(w)])) }]), { concurrent: true }),
    });
  }
  tasks.push({
    title: 'roles and labels',
    run: (ui) => ui.subtasks(present.flatMap((n) => phase(n.name, [roleStep(n), labelStep(n)])), { concurrent: true }),
  });
  if (options.prune) {
    const keep = new Set(present.map((n) => n.name));
    const extra = new Map<string, Member>();
    for (const old of previous?.nodes ?? []) {
      if (keep.has(old.name) || !(await store.exists(old.name))) continue;
      extra.set(old.name, await memberOf(store, await store.load(old.name), tls));
    }
    tasks.push(...phase(desired.name, [pruneStep(keep, extra)]));
  }
  const swarmStarted = Date.now();
  if (!dry || members.size > 0) await runTasks(tasks, { silent: options.silent ?? false });
  const swarmMs = Date.now() - swarmStarted;

  if (!dry) {
    for (const [name, m] of members) {
      const id = (await swarmInfo(m.docker)).nodeId;
      await store.update(name, (r) => {
        r.swarm = { ...r.swarm, nodeId: id };
      });
    }
    if (first) await warnWithoutIpvs(store, first.name);
  }
  const unchanged = [...steps.values()].every((list) => list.every((r) => r.outcome === 'already'));
  return {
    created: missing.map((p) => p.request.name),
    steps,
    unchanged,
    timings: { machines: Object.fromEntries(createTimings), machinesWallMs, swarmMs, totalMs: Date.now() - started },
  };
}

/**
 * Service VIPs and the routing mesh need IPVS in the host kernel; some kernels (this lab's,
 * minimal cloud kernels) have none. One line says so, and what works instead.
 */
async function warnWithoutIpvs(store: Store, machine: string): Promise<void> {
  const record = await store.load(machine);
  const connection = await connectMachine(store, record).catch(() => undefined);
  if (!connection) return;
  try {
    const probe = await connection.exec('test -e /proc/net/ip_vs || { sudo -n modprobe ip_vs 2>/dev/null; test -e /proc/net/ip_vs; }');
    if (probe.code !== 0) {
      warn(`the kernel of ${machine} has no IPVS: service VIPs and the ingress routing mesh will not work; use endpoint_mode: dnsrr and ports with mode: host`);
    }
  } finally {
    connection.close();
  }
}
