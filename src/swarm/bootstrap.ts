/**
 * `swarm bootstrap` as one plan: the cluster record first (so `swarm down --rm` always finds
 * what a bootstrap made), identical machines in one driver call where the driver can, a
 * pipeline per machine (create or provision), then the swarm phases: gather members, init on
 * the first manager, managers joined one at a time, workers in parallel, roles and labels,
 * and with --prune the removal of nodes no longer listed. The whole run holds the cluster
 * lock, so two commands never change one cluster at once.
 */
import path from 'node:path';
import type { ClusterHints } from '../../drivers/kit/index.js';
import { clientTls, type EngineTls } from '../engine/client.js';
import { TmachineError } from '../errors.js';
import { checkCapacity, prepareCreate, type PreparedCreate } from '../machine/create.js';
import { connectMachine } from '../machine/connect.js';
import { createTogetherPhase, machinesContext, machinesPhase, machineTimings, type CreateTimings, type MachinesContext } from '../machine/pipeline.js';
import { runPlan } from '../plan/runner.js';
import type { Phase, PlanReport, StepResult } from '../plan/types.js';
import { uploadedBytes } from '../ssh/connection.js';
import type { Step } from '../steps.js';
import type { Store } from '../store/store.js';
import { planProgress, type ProgressMode } from '../ui/plan-progress.js';
import { info, warn } from '../ui/log.js';
import { loadCluster, updateCluster, withClusterLock } from './cluster-record.js';
import { applyMount, clusterMount, clusterMounts, mountHolds, type ClusterMount } from './ops/mounts.js';
import { clusterRegistryCAs } from './ops/registry.js';
import { initStep, joinStep, labelStep, pruneStep, roleStep, type ConvergeContext } from './converge.js';
import type { DesiredCluster, DesiredNode } from './desired-state.js';
import { advertiseAddress, memberOf, swarmInfo, type Member } from './engines.js';
import { applySwarmMtu, ingressMtuHolds, overlayMtuFor, readNicMtu } from './mtu.js';

export interface BootstrapOptions {
  dryRun?: boolean;
  prune?: boolean;
  keepOnFailure?: boolean;
  progress?: ProgressMode;
  signal?: AbortSignal;
  /** How long to wait for another command that holds the cluster lock. */
  lockWaitMs?: number;
  /** At most this many machines worked on at once (default: all). */
  concurrency?: number;
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
    /** Bytes uploaded to hosts by this command (the bundle relay keeps it at one bundle). */
    uploadedBytes: number;
    /** Hosts that fetched the bundle from a peer instead of from this computer. */
    relayed: string[];
    /** Every step of the plan with its host and wall time, in the order they ended (--timings). */
    steps: Array<{ host: string; step: string; ms: number; outcome: string }>;
  };
}

interface BootstrapContext extends MachinesContext {
  desired: DesiredCluster;
  converge: ConvergeContext;
  tls?: EngineTls;
  prune: boolean;
}

export async function bootstrapCluster(store: Store, desired: DesiredCluster, options: BootstrapOptions = {}): Promise<BootstrapReport> {
  const managers = desired.nodes.filter((n) => n.role === 'manager');
  if (managers.length === 0) throw new TmachineError('a swarm needs at least one manager', { hint: 'pass --managers 1 (or 3)' });
  const port = desired.swarm.dataPathPort;
  // Checked before anything is created: `docker swarm init` refuses it only after the hosts exist.
  if (port !== undefined && (!Number.isInteger(port) || port < 1024 || port > 49151)) {
    throw new TmachineError(`data-path port ${port} is out of range`, { hint: 'Docker takes a data-path port from 1024 to 49151 (default 4789)' });
  }
  return withClusterLock(store, desired.name, `swarm bootstrap of ${desired.name}`, options.lockWaitMs, () => bootstrapLocked(store, desired, options));
}

async function bootstrapLocked(store: Store, desired: DesiredCluster, options: BootstrapOptions): Promise<BootstrapReport> {
  const managers = desired.nodes.filter((n) => n.role === 'manager');
  // Everything checkable is checked before anything is made.
  const creates = new Map<string, PreparedCreate>();
  const clusterCAs = await clusterRegistryCAs(store, desired.name);
  for (const node of desired.nodes) {
    if (await store.exists(node.name)) continue;
    if (!node.create) throw new TmachineError(`machine "${node.name}" does not exist`, { hint: 'create it first, or let bootstrap create it with --driver' });
    // CAs added to the cluster with `swarm registry-ca add` go to machines that join it later.
    const engine = { ...desired.engine, opts: desired.engine.opts ?? [], port: 2376, registryCAs: [...desired.engine.registryCAs, ...clusterCAs.filter((c) => !desired.engine.registryCAs.some((d) => d.registry === c.registry))] };
    creates.set(
      node.name,
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
  const byDriver = new Map<string, PreparedCreate[]>();
  for (const p of creates.values()) byDriver.set(p.definition.name, [...(byDriver.get(p.definition.name) ?? []), p]);
  for (const group of byDriver.values()) await checkCapacity(group[0]!.definition, group.length);

  const dry = options.dryRun ?? false;
  const previous = await loadCluster(store, desired.name);
  if (!dry) {
    await updateCluster(store, desired.name, (current) => ({
      name: desired.name,
      createdAt: current?.createdAt ?? new Date().toISOString(),
      managers: managers.length,
      nodes: desired.nodes.map((n) => ({ name: n.name, role: n.role })),
      swarm: {
        advertise: desired.swarm.advertise,
        encryptedOverlay: desired.swarm.encryptedOverlay,
        ...(desired.swarm.dataPathPort ? { dataPathPort: desired.swarm.dataPathPort } : {}),
        ...(desired.swarm.mtu ? { mtu: desired.swarm.mtu } : {}),
      },
      stacks: current?.stacks ?? [],
    }));
  }

  const cluster: ClusterHints = {
    name: desired.name,
    ...(desired.swarm.dataPathPort ? { dataPathPort: desired.swarm.dataPathPort } : {}),
    ...(desired.swarm.encryptedOverlay ? { encryptedOverlay: true } : {}),
  };
  const engineSettings = desiredEngineChange(desired);
  const context: BootstrapContext = {
    ...machinesContext(store, {
      creates,
      keepOnFailure: options.keepOnFailure ?? false,
      cluster,
      ...(desired.swarm.dataPathPort ? { dataPathPort: desired.swarm.dataPathPort } : {}),
      ...(engineSettings ? { engineChange: engineSettings } : {}),
    }),
    desired,
    prune: options.prune ?? false,
    converge: {
      members: new Map(),
      advertise: desired.swarm.advertise,
      ...(desired.swarm.dataPathPort ? { dataPathPort: desired.swarm.dataPathPort } : {}),
      managerNames: [],
    },
  };
  const node = (name: string): DesiredNode => desired.nodes.find((n) => n.name === name)!;
  const present = (ctx: BootstrapContext, hosts: readonly string[], role?: DesiredNode['role']) =>
    hosts.filter((h) => ctx.converge.members.has(h) && (!role || node(h).role === role));
  const firstManager = managers[0]!.name;

  const phases: Phase<BootstrapContext>[] = [
    createTogetherPhase() as Phase<BootstrapContext>,
    machinesPhase('machines', options.concurrency) as Phase<BootstrapContext>,
    {
      id: 'members',
      title: 'gather the swarm members',
      scope: { kind: 'cluster' },
      run: async (ctx) => gatherMembers(ctx, dry),
      // Under --dry-run only machines that exist can be asked.
      pipeline: true,
    },
    stepPhase('swarm-init', 'swarm init', { kind: 'cluster' }, (ctx) => (ctx.converge.members.has(firstManager) ? [firstManager] : []), () => initStep(firstManager)),
    overlayMtuPhase(firstManager),
    // The first manager too: when the swarm exists already (its host was replaced), it joins.
    stepPhase('swarm-join-managers', 'join the swarm as manager', { kind: 'serial' }, (ctx, hosts) => present(ctx, hosts, 'manager').filter((h) => h !== firstManager || (ctx.converge.leader !== undefined && ctx.converge.leader !== ctx.converge.members.get(h))), (h) => joinStep(node(h))),
    stepPhase('swarm-join-workers', 'join the swarm as worker', { kind: 'parallel', ...(options.concurrency ? { concurrency: options.concurrency } : {}) }, (ctx, hosts) => present(ctx, hosts, 'worker'), (h) => joinStep(node(h))),
    mountsPhase(),
    stepPhase('swarm-roles', 'role and labels', { kind: 'parallel' }, (ctx, hosts) => present(ctx, hosts), (h) => combine(roleStep(node(h)), labelStep(node(h)))),
  ];
  if (options.prune) {
    phases.push(
      stepPhase('swarm-prune', 'prune nodes no longer listed', { kind: 'cluster' }, (ctx) => (ctx.converge.members.size > 0 ? [desired.name] : []), () => {
        const keep = new Set(desired.nodes.map((n) => n.name));
        return lazyPrune(store, previous?.nodes.map((n) => n.name).filter((n) => !keep.has(n)) ?? [], keep);
      }),
    );
  }

  const progress = planProgress(options.progress ?? 'auto');
  const started = Date.now();
  let report: PlanReport;
  try {
    report = await runPlan({ title: 'swarm bootstrap', hosts: desired.nodes.map((n) => n.name), phases }, context, {
      dryRun: dry,
      ...(options.signal ? { signal: options.signal } : {}),
      listener: progress.listener,
    });
  } catch (error) {
    await context.ssh.closeAll();
    throw error;
  } finally {
    await progress.finished();
  }
  const machinesWallMs = report.results.filter((r) => r.phase === 'machine' || r.phase === 'hosts-together').reduce((max, r) => Math.max(max, r.ms), 0);
  const swarmMs = report.results.filter((r) => r.phase.startsWith('swarm-')).reduce((sum, r) => sum + r.ms, 0);

  if (!dry) {
    for (const [name, m] of context.converge.members) {
      const id = (await swarmInfo(m.docker)).nodeId;
      await store.update(name, (r) => void (r.swarm = { ...r.swarm, nodeId: id }));
    }
    await warnWithoutIpvs(store, firstManager, context);
    // Hosts that formed a swarm before tmachine knew them: that swarm is now the cluster's.
    const init = report.results.find((r) => r.phase === 'swarm-init');
    const leader = context.converge.leader;
    if (!previous && init?.outcome === 'already' && leader) {
      info(`${desired.name}: recorded the swarm that ${leader.record.name} already manages (cluster ${context.converge.clusterId?.slice(0, 12) ?? '?'}); no second swarm was started`);
    }
  }
  await context.ssh.closeAll();
  const steps = new Map<string, StepResult[]>();
  for (const r of report.results) {
    if (r.phase === 'machine' || r.phase === 'members') continue;
    const host = r.host && desired.nodes.some((n) => n.name === r.host) ? r.host : desired.name;
    steps.set(host, [...(steps.get(host) ?? []), r]);
  }
  return {
    created: [...creates.keys()],
    steps,
    unchanged: report.unchanged,
    timings: {
      machines: machineTimings(report),
      machinesWallMs,
      swarmMs,
      totalMs: Date.now() - started,
      uploadedBytes: uploadedBytes(),
      relayed: context.relay?.fetched ?? [],
      steps: report.results.map((r) => ({ host: r.host ?? desired.name, step: r.phase, ms: r.ms, outcome: r.outcome })),
    },
  };
}

/**
 * Engine settings of the cluster (file or flags) applied to machines that already exist, so
 * a re-run with changed options or registries converges them too. Undefined: nothing given.
 */
function desiredEngineChange(desired: DesiredCluster): MachinesContext['engineChange'] {
  const e = desired.engine;
  const given = e.opts.length + e.env.length + e.labels.length + e.insecureRegistries.length + e.registryMirrors.length + e.registryCAs.length > 0 || e.storageDriver !== undefined || e.migrateTls === true;
  if (!given) return undefined;
  return (current) => ({
    ...current,
    opts: e.opts,
    env: e.env,
    labels: e.labels,
    insecureRegistries: e.insecureRegistries,
    registryMirrors: e.registryMirrors,
    // Registries the cluster must trust, added to what the machine trusts already.
    registryCAs: [...current.registryCAs.filter((c) => !e.registryCAs.some((d) => d.registry === c.registry)), ...e.registryCAs.map((c) => ({ registry: c.registry, caFile: path.resolve(c.caFile) }))],
    ...(e.storageDriver ? { storageDriver: e.storageDriver } : {}),
    ...(e.migrateTls ? { migrateTls: true } : {}),
  });
}

async function gatherMembers(ctx: BootstrapContext, dry: boolean): Promise<void> {
  const { store, desired } = ctx;
  ctx.tls = await clientTls(store).catch(() => undefined);
  for (const node of desired.nodes) {
    if (!(await store.exists(node.name))) continue;
    const record = dry ? await store.load(node.name) : await store.update(node.name, (r) => void (r.swarm = { ...r.swarm, cluster: desired.name, role: node.role }));
    if (record.creating) continue;
    ctx.converge.members.set(node.name, await memberOf(store, record, ctx.tls));
  }
  ctx.converge.managerNames = desired.nodes.filter((n) => n.role === 'manager' && ctx.converge.members.has(n.name)).map((n) => n.name);
}

/** A converge Step (src/swarm/converge.ts) as a plan phase over chosen hosts. */
function stepPhase(
  id: string,
  title: string,
  scope: Phase<BootstrapContext>['scope'],
  choose: (ctx: BootstrapContext, hosts: readonly string[]) => string[],
  stepFor: (host: string) => Step<ConvergeContext>,
): Phase<BootstrapContext> {
  const steps = new Map<string, Step<ConvergeContext>>();
  const of = (host: string) => {
    let step = steps.get(host);
    if (!step) steps.set(host, (step = stepFor(host)));
    return step;
  };
  // A cluster-scoped phase has one run with no host; its one chosen host is remembered here.
  let clusterHost: string | undefined;
  const hostOf = (h: string | undefined) => h ?? clusterHost!;
  return {
    id,
    title,
    scope: scope.kind === 'cluster' ? { kind: 'serial' } : scope,
    prepare: (ctx, hosts) => {
      const chosen = choose(ctx, hosts);
      clusterHost = chosen[0];
      return chosen;
    },
    needsRun: (ctx, run) => of(hostOf(run.host)).needsRun(ctx.converge),
    run: (ctx, run) => of(hostOf(run.host)).run(ctx.converge, run.report),
  };
}

function combine(a: Step<ConvergeContext>, b: Step<ConvergeContext>): Step<ConvergeContext> {
  return {
    id: `${a.id}+${b.id}`,
    title: `${a.title}, ${b.title}`,
    needsRun: async (ctx) => (await a.needsRun(ctx)) || (await b.needsRun(ctx)),
    run: async (ctx, report) => {
      if (await a.needsRun(ctx)) await a.run(ctx, report);
      if (await b.needsRun(ctx)) await b.run(ctx, report);
    },
  };
}

/** The prune step over machines of the previous cluster definition that are no longer listed. */
function lazyPrune(store: Store, dropped: string[], keep: Set<string>): Step<ConvergeContext> {
  let inner: Step<ConvergeContext> | undefined;
  const get = async () => {
    if (inner) return inner;
    const extra = new Map<string, Member>();
    const tls = await clientTls(store);
    for (const name of dropped) if (await store.exists(name)) extra.set(name, await memberOf(store, await store.load(name), tls));
    inner = pruneStep(keep, extra);
    return inner;
  };
  return {
    id: 'swarm-prune',
    title: 'prune nodes no longer listed',
    needsRun: async (ctx) => (await get()).needsRun(ctx),
    run: async (ctx, report) => (await get()).run(ctx, report),
  };
}

// --- overlay MTU (SPEC §4; issue 15) ------------------------------------------------------

/**
 * Right after `swarm init`, before any service publishes through it: when the nodes' NIC MTU
 * is below 1500 (GCE: 1460), or the cluster file sets `mtu`, the ingress network gets the
 * overlay MTU (NIC MTU − 50), and the cluster record keeps it for `swarm deploy`'s warnings.
 */
function overlayMtuPhase(firstManager: string): Phase<BootstrapContext> {
  let wanted: number | undefined;
  const nodeMtus = async (ctx: BootstrapContext) => {
    const nodes = [...ctx.converge.members.values()];
    return Promise.all(
      nodes.map(async (m) => {
        // The command's one connection per host (the pipeline opened it).
        const connection = await ctx.ssh.get(m.record.name, () => connectMachine(ctx.store, m.record));
        return readNicMtu((cmd) => connection.run(cmd, { what: 'read the NIC MTU' }), m.record.name, advertiseAddress(m.record, ctx.converge.advertise));
      }),
    );
  };
  return {
    id: 'swarm-mtu',
    title: 'overlay MTU',
    scope: { kind: 'serial' },
    prepare: (ctx) => (ctx.converge.members.has(firstManager) ? [firstManager] : []),
    needsRun: async (ctx) => {
      wanted = overlayMtuFor(await nodeMtus(ctx), ctx.desired.swarm.mtu);
      return wanted !== undefined && !(await ingressMtuHolds(ctx.converge.leader?.docker ?? ctx.converge.members.get(firstManager)!.docker, wanted));
    },
    run: async (ctx, run) => {
      const leader = ctx.converge.leader ?? ctx.converge.members.get(firstManager)!;
      const nodes = [...ctx.converge.members.values()].map((m) => ({
        name: m.record.name,
        address: advertiseAddress(m.record, ctx.converge.advertise),
        run: async (cmd: string) => (await ctx.ssh.get(m.record.name, () => connectMachine(ctx.store, m.record))).run(cmd, { what: 'read the NIC MTU' }),
      }));
      const { overlayMtu, nicMtu } = await applySwarmMtu(leader.docker, nodes, ctx.desired.swarm.mtu);
      if (overlayMtu === undefined) return;
      run.report(`ingress network: MTU ${overlayMtu} (the nodes' NIC MTU is ${nicMtu})`);
      // The record exists: bootstrap wrote it before any phase ran.
      await updateCluster(ctx.store, ctx.desired.name, (current) => ({ ...current!, swarm: { ...current!.swarm, mtu: overlayMtu } }));
    },
  };
}

/**
 * Shared storage on every member (SPEC §3 `mounts:`, and `swarm mount`): systemd mount units,
 * written only where they do not hold yet.
 */
function mountsPhase(): Phase<BootstrapContext> {
  const wanted = async (ctx: BootstrapContext): Promise<ClusterMount[]> => {
    const fromFile = ctx.desired.mounts.map((m) => clusterMount(m.source, m.target, m.options ? { options: m.options } : {}));
    const kept = (await clusterMounts(ctx.store, ctx.desired.name)).filter((k) => !fromFile.some((f) => f.target === k.target));
    return [...fromFile, ...kept];
  };
  const missing = async (ctx: BootstrapContext, host: string) => {
    const record = await ctx.store.load(host);
    const out: ClusterMount[] = [];
    for (const m of await wanted(ctx)) if (!(await mountHolds(ctx.store, record, m))) out.push(m);
    return out;
  };
  return {
    id: 'swarm-mounts',
    title: 'shared storage mounts',
    scope: { kind: 'parallel' },
    prepare: async (ctx, hosts) => ((await wanted(ctx)).length === 0 ? [] : hosts.filter((h) => ctx.converge.members.has(h))),
    needsRun: async (ctx, run) => (await missing(ctx, run.host!)).length > 0,
    run: async (ctx, run) => {
      const record = await ctx.store.load(run.host!);
      for (const m of await missing(ctx, run.host!)) await applyMount(ctx.store, record, m);
    },
  };
}

/**
 * Service VIPs and the routing mesh need IPVS in the host kernel; some kernels (this lab's,
 * minimal cloud kernels) have none. One line says so, and what works instead.
 */
async function warnWithoutIpvs(store: Store, machine: string, ctx: MachinesContext): Promise<void> {
  const record = await store.load(machine).catch(() => undefined);
  if (!record) return;
  const connection = await ctx.ssh.get(machine, () => connectMachine(store, record)).catch(() => undefined);
  if (!connection) return;
  const probe = await connection.exec('test -e /proc/net/ip_vs || { sudo -n modprobe ip_vs 2>/dev/null; test -e /proc/net/ip_vs; }');
  if (probe.code !== 0) {
    warn(`the kernel of ${machine} has no IPVS: service VIPs and the ingress routing mesh will not work; use endpoint_mode: dnsrr and ports with mode: host`);
  }
}
