/**
 * The machine phases every plan that makes or changes hosts uses (create, provision,
 * upgrade, swarm bootstrap): an optional many-at-once create for drivers that offer it,
 * then one pipeline per machine that never waits for the other machines: make the host,
 * reach it over SSH, detect the OS, every provisioning step, record the engine. A machine
 * left unfinished by a failure or Ctrl-C is removed through its undo log (one code path).
 */
import path from 'node:path';
import { isDriverError, type ClusterHints } from '../../drivers/kit/index.js';
import { detectHost } from '../../provision/os.js';
import { provisionPlan, type ProvisionContext } from '../../provision/engine-install.js';
import { bundleArch } from '../engine/bundle.js';
import { engineClient } from '../engine/client.js';
import { TmachineError } from '../errors.js';
import type { Phase, PhaseRun, PlanReport } from '../plan/types.js';
import { generateKeyPair } from '../ssh/keys.js';
import { SshPool } from '../ssh/pool.js';
import { PeerBundleRelay } from './bundle-relay.js';
import type { RemoteHost } from '../ssh/types.js';
import { STORE_SCHEMA_VERSION, type EngineOptions, type MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { connectMachine } from './connect.js';
import type { PreparedCreate } from './create.js';
import { instantiateDriver, type DriverInstance } from './driver-instance.js';
import { discardUnfinished } from './remove.js';
import { ensureMachineCertificates, prepareEngineSource, provisioningHost, recordEngineSource, type EngineSource } from './provision.js';
import fs from 'node:fs/promises';

export interface MachinesContext {
  store: Store;
  /** Machines to make, by name; every other host of the plan exists already. */
  creates: Map<string, PreparedCreate>;
  /** The engine every machine of the command gets (resolved once, so all are identical). */
  engineSource: (engine: EngineOptions) => Promise<EngineSource>;
  keepOnFailure: boolean;
  cluster?: ClusterHints;
  /** Replaces a machine's engine options before provisioning (upgrade). */
  engineChange?: (current: EngineOptions) => EngineOptions;
  forceCerts?: boolean;
  dataPathPort?: number;
  /** Driver instances of the machines being made (kept between phases). */
  instances: Map<string, DriverInstance>;
  /** Machines whose host a many-at-once create already made. */
  madeTogether: Set<string>;
  /** Machines this command reserved: the only ones its clean-up may remove. */
  reserved: Set<string>;
  /** Machines this plan removed again (unfinished); for the summary. */
  discarded: string[];
  /** One SSH connection per host for every phase of the command; the command closes it. */
  ssh: SshPool;
  /** One bundle upload from the workstation per command; the other hosts fetch from a peer. */
  relay: PeerBundleRelay | undefined;
}

export function machinesContext(store: Store, options: Partial<Omit<MachinesContext, 'store' | 'instances' | 'madeTogether' | 'discarded' | 'reserved'>> & { engineSource?: MachinesContext['engineSource'] }): MachinesContext {
  return {
    store,
    creates: options.creates ?? new Map(),
    engineSource: options.engineSource ?? sharedEngineSource(store),
    keepOnFailure: options.keepOnFailure ?? false,
    ...(options.cluster ? { cluster: options.cluster } : {}),
    ...(options.engineChange ? { engineChange: options.engineChange } : {}),
    ...(options.forceCerts ? { forceCerts: true } : {}),
    ...(options.dataPathPort ? { dataPathPort: options.dataPathPort } : {}),
    instances: new Map(),
    madeTogether: new Set(),
    reserved: new Set(),
    discarded: [],
    ssh: new SshPool(),
    // TMACHINE_BUNDLE_RELAY=off uploads to every host (benchmarks compare the two).
    relay: process.env['TMACHINE_BUNDLE_RELAY'] === 'off' ? undefined : new PeerBundleRelay(store),
  };
}

/** One engine source per distinct engine choice, resolved once for all machines of a command. */
export function sharedEngineSource(store: Store, report: (m: string) => void = () => undefined): (engine: EngineOptions) => Promise<EngineSource> {
  const pending = new Map<string, Promise<EngineSource>>();
  return (engine) => {
    const key = JSON.stringify([engine.install, engine.bundle, engine.bundleSha256, engine.version]);
    let source = pending.get(key);
    if (!source) pending.set(key, (source = prepareEngineSource(store, engine, report)));
    return source;
  };
}

/** Writes the new machine's record (creating: true) and key, then its driver instance. */
async function reserveMachine(ctx: MachinesContext, prepared: PreparedCreate, signal: AbortSignal, report: (m: string) => void): Promise<DriverInstance> {
  const { store } = ctx;
  const name = prepared.request.name;
  const record: MachineRecord = {
    schemaVersion: STORE_SCHEMA_VERSION,
    name,
    createdAt: new Date().toISOString(),
    creating: true,
    driver: { name: prepared.definition.name, options: prepared.storedOptions, state: {}, resources: [] },
    ssh: { user: 'root', host: '', port: 22, keyPath: 'id_ed25519' },
    addresses: { public: '' },
    engine: prepared.engine,
    ...(prepared.request.swarm ? { swarm: prepared.request.swarm } : {}),
  };
  await store.reserve(record);
  ctx.reserved.add(name);
  const keys = generateKeyPair(`tmachine-${name}`);
  const dir = store.machineDir(name);
  await store.writeSecretFile(path.join(dir, 'id_ed25519'), keys.privateKey);
  await store.writeSecretFile(path.join(dir, 'id_ed25519.pub'), keys.publicKey + '\n');
  const cas: Array<{ registry: string; caFile: string }> = [];
  for (const ca of prepared.engine.registryCAs) {
    // The CA travels with the machine, so later provisioning does not depend on the user's file.
    const copy = `registry-ca-${ca.registry.replace(/[^a-zA-Z0-9.-]/g, '_')}.crt`;
    await store.writeSecretFile(path.join(dir, copy), await fs.readFile(ca.caFile));
    cas.push({ registry: ca.registry, caFile: copy });
  }
  if (cas.length > 0) await store.update(name, (r) => void (r.engine.registryCAs = cas));
  const instance = await instantiateDriver({
    store,
    machineName: name,
    definition: prepared.definition,
    rawOptions: prepared.rawOptions,
    report,
    signal,
    ...(ctx.cluster ? { cluster: ctx.cluster } : {}),
    // Bundles are made for (Debian build) or fetched for this computer's architecture.
    ...(prepared.engine.install === 'bundle' ? { engineArch: bundleArch() } : {}),
  });
  ctx.instances.set(name, instance);
  return instance;
}

/** A driver failure names the machine it happened to. */
function onMachine(name: string, error: unknown): unknown {
  if (isDriverError(error) && !error.message.includes(name)) {
    return new TmachineError(`${name}: ${error.message}`, { kind: error.kind, ...(error.hint ? { hint: error.hint } : {}), cause: error, exitCode: error.kind === 'interrupted' ? 130 : 1 });
  }
  return error;
}

/**
 * N identical machines of a driver that can make them in one call (EC2 RunInstances with
 * MinCount=MaxCount=N, GCE bulkInsert): one cluster-scoped phase before the pipelines.
 */
export function createTogetherPhase(): Phase<MachinesContext> {
  const groups = async (ctx: MachinesContext) => {
    const byKey = new Map<string, PreparedCreate[]>();
    for (const prepared of ctx.creates.values()) {
      const implementation = await prepared.definition.load();
      if (!implementation.createMany) continue;
      const key = JSON.stringify([prepared.definition.name, prepared.rawOptions, prepared.request.swarm?.role ?? '']);
      byKey.set(key, [...(byKey.get(key) ?? []), prepared]);
    }
    return [...byKey.values()].filter((g) => g.length > 1);
  };
  return {
    id: 'hosts-together',
    title: 'make identical hosts in one call',
    scope: { kind: 'cluster' },
    needsRun: async (ctx) => (await groups(ctx)).length > 0,
    describe: () => 'make identical hosts in one call (many-at-once driver)',
    run: async (ctx, run) => {
      for (const group of await groups(ctx)) {
        const names = group.map((p) => p.request.name);
        run.report(`${names.join(', ')}: one call to the ${group[0]!.definition.name} driver`);
        const instances = [];
        for (const prepared of group) instances.push(await reserveMachine(ctx, prepared, run.signal, run.report));
        for (const instance of instances) await instance.driver.preCreateCheck();
        await instances[0]!.implementation.createMany!(instances.map((i) => i.context));
        for (const name of names) ctx.madeTogether.add(name);
      }
    },
    cleanup: async (ctx) => {
      for (const name of ctx.madeTogether) await discardIfUnfinished(ctx, name);
    },
  };
}

async function discardIfUnfinished(ctx: MachinesContext, name: string): Promise<void> {
  // A create that lost the race for a name must not remove the winner's machine.
  if (ctx.keepOnFailure || !ctx.reserved.has(name)) return;
  const record = await ctx.store.load(name).catch(() => undefined);
  if (!record?.creating) return;
  ctx.instances.get(name)?.context.signal;
  const failure = await discardUnfinished(ctx.store, name);
  if (failure === undefined) ctx.discarded.push(name);
}

/** The per-machine pipeline: host, SSH, OS, provisioning steps, engine record. */
export function machinesPhase(title = 'machines', concurrency?: number): Phase<MachinesContext> {
  return {
    id: 'machine',
    title,
    scope: { kind: 'parallel', ...(concurrency ? { concurrency } : {}) },
    pipeline: true,
    run: async (ctx, run) => {
      const name = run.host!;
      try {
        await machinePipeline(ctx, name, run);
      } catch (error) {
        throw onMachine(name, error);
      }
    },
    cleanup: async (ctx, run) => discardIfUnfinished(ctx, run.host!),
  };
}

async function machinePipeline(ctx: MachinesContext, name: string, run: PhaseRun): Promise<void> {
  const { store } = ctx;
  const prepared = ctx.creates.get(name);
  if (prepared && run.dryRun) {
    await run.step({ id: 'create', title: `create with the ${prepared.definition.name} driver`, run: async () => undefined });
    await run.step({ id: 'provision', title: 'provision the engine', run: async () => undefined });
    return;
  }
  let host: RemoteHost | undefined;
  try {
    if (prepared) {
      await run.step({
        id: 'host',
        title: `make the host (${prepared.definition.name})`,
        needsRun: async () => !ctx.madeTogether.has(name),
        run: async (report) => {
          const instance = await reserveMachine(ctx, prepared, run.signal, report);
          await instance.driver.preCreateCheck();
          await instance.driver.create();
        },
      });
      await run.step({
        id: 'ssh',
        title: 'reach it over SSH',
        run: async () => {
          const { driver } = ctx.instances.get(name)!;
          const target = await driver.sshTarget();
          const addresses = await driver.addresses();
          const record = await store.update(name, (r) => {
            r.ssh = { user: target.user, host: target.host, port: target.port, keyPath: target.privateKeyPath ?? 'id_ed25519' };
            r.addresses = addresses;
          });
          const published = (await driver.publishedHostKeys?.()) ?? undefined;
          const connection = await ctx.ssh.get(name, () => connectMachine(store, record, { waitMs: 90_000, ...(published ? { publishedHostKeys: published } : {}) }));
          host = provisioningHost(store, record, connection);
        },
      });
    }
    let record = await store.load(name);
    if (record.creating && !prepared) {
      throw new TmachineError(`machine "${name}" was never finished`, { hint: `remove it with \`tmachine rm -f ${name}\`` });
    }
    if (ctx.engineChange && !run.dryRun) {
      const change = ctx.engineChange;
      record = await store.update(name, (r) => void (r.engine = change(r.engine)));
    } else if (ctx.engineChange) {
      record = { ...record, engine: ctx.engineChange(record.engine) };
    }
    const source = await ctx.engineSource(record.engine);
    if (!run.dryRun) record = await recordEngineSource(store, name, source);
    const current = record;
    host ??= provisioningHost(store, record, await ctx.ssh.get(name, () => connectMachine(store, current)));
    await provisionSteps(ctx, record, host, source, run);
    if (!run.dryRun) await store.update(name, (r) => void delete r.creating);
  } catch (error) {
    // A connection that failed half-way is not worth keeping for later phases.
    host?.close();
    throw error;
  }
}

/** The provisioning of one machine as sub-steps of its pipeline. */
async function provisionSteps(ctx: MachinesContext, record: MachineRecord, host: RemoteHost, source: EngineSource, run: PhaseRun): Promise<void> {
  const { store } = ctx;
  const certs = await ensureMachineCertificates(store, record, ctx.forceCerts);
  const registryCas = await Promise.all(
    record.engine.registryCAs.map(async (r) => ({ registry: r.registry, caPem: await fs.readFile(store.machineFile(record.name, r.caFile), 'utf8') })),
  );
  if (record.engine.install === 'bundle' && !source.bundle) throw new TmachineError(`no engine bundle given for ${record.name}`);
  const tls = { ca: certs.store.caPem, cert: certs.store.certPem, key: certs.store.keyPem };
  const os = await detectHost(host);
  const instance = ctx.instances.get(record.name);
  const putFile = instance?.driver.putFile?.bind(instance.driver);
  const context: ProvisionContext = {
    host,
    machineName: record.name,
    os,
    sshUser: record.ssh.user,
    engine: record.engine,
    ...(source.bundle ? { bundle: { path: source.bundle.path, sha256: source.bundle.sha256, version: source.bundle.version ?? '' } } : {}),
    certs: { caPem: certs.store.caPem, serverCertPem: certs.serverCertPem, serverKeyPem: certs.serverKeyPem },
    registryCas,
    ...(ctx.dataPathPort ? { dataPathPort: ctx.dataPathPort } : {}),
    sshPort: record.ssh.port,
    probe: async () => (await engineClient(record, tls, 10_000).version()).Version,
    ...(putFile ? { fastUpload: (local: string, remote: string) => putFile(local, remote, { mode: 0o600 }) } : {}),
    ...(ctx.relay ? { bundleRelay: ctx.relay } : {}),
  };
  run.report(`${os.prettyName} (${os.arch})`);
  const provisionContext = context;
  for (const step of provisionPlan(provisionContext)) {
    await run.step({ id: step.id, title: step.title, needsRun: () => step.needsRun(provisionContext), run: (report) => step.run(provisionContext, report) });
  }
  if (run.dryRun) return;
  const engineVersion = await provisionContext.probe!();
  await store.update(record.name, (r) => {
    r.provisioned = { at: new Date().toISOString(), engineVersion, os: provisionContext.os.prettyName };
  });
}

/** Per machine: wall time of making the host, reaching SSH, and installing the engine. */
export interface CreateTimings {
  hostMs: number;
  sshMs: number;
  engineMs: number;
}

export function machineTimings(report: Pick<PlanReport, 'results'>): Record<string, CreateTimings> {
  const out: Record<string, CreateTimings> = {};
  for (const r of report.results) {
    if (!r.host || !r.phase.startsWith('machine/')) continue;
    const t = (out[r.host] ??= { hostMs: 0, sshMs: 0, engineMs: 0 });
    const sub = r.phase.slice('machine/'.length);
    if (sub === 'host') t.hostMs += r.ms;
    else if (sub === 'ssh') t.sshMs += r.ms;
    else t.engineMs += r.ms;
  }
  return out;
}
