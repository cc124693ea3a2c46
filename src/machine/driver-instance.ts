/**
 * Builds a driver instance for a machine: typed options and state (parsed by the driver's
 * schemas), an undo log persisted in the machine record, the abort signal, and the notes a
 * driver wants the user to read. The one place where the core meets a driver.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { loadDriverDefinition } from '../../drivers/registry.js';
import { setDebugSink, setSecretSink } from '../../drivers/kit/log.js';
import {
  parseOptions,
  resolveRawOptions,
  type AnyDriverDefinition,
  type ClusterHints,
  type Driver,
  type DriverContext,
  type DriverImplementation,
  type RawDriverOptions,
  type ResourceEntry,
  type UndoLog,
} from '../../drivers/kit/index.js';
import { TmachineError } from '../errors.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { debug, warn } from '../ui/log.js';
import { registerSecret } from '../redact.js';

// Drivers log and register secrets through the kit; the core redacts and honours --debug.
setDebugSink((scope, message) => debug(scope, message));
setSecretSink((value) => registerSecret(value));

export interface DriverInstanceInput {
  store: Store;
  machineName: string;
  definition: AnyDriverDefinition;
  /** Raw option values as stored (or resolved from flags for a new machine). */
  rawOptions: RawDriverOptions | Record<string, unknown>;
  report?: (message: string) => void;
  signal?: AbortSignal;
  cluster?: ClusterHints;
  /** The bundle's architecture (uname style) when the machine gets a bundle. */
  engineArch?: string;
}

export interface DriverInstance {
  driver: Driver;
  implementation: DriverImplementation<unknown, unknown>;
  context: DriverContext<unknown, unknown>;
}

const neverAborted = new AbortController().signal;

/** Resolves flag values for a new machine: env, defaults, coercion, then the driver's schema. */
export function resolveDriverOptions(definition: AnyDriverDefinition, given: Record<string, unknown>): { raw: RawDriverOptions; typed: unknown } {
  const raw = resolveRawOptions(definition.flags, given);
  return { raw, typed: parseOptions(definition.optionsSchema, raw, definition.flags) };
}

export async function instantiateDriver(input: DriverInstanceInput): Promise<DriverInstance> {
  const { store, machineName, definition } = input;
  const implementation = (await definition.load()) as DriverImplementation<unknown, unknown>;
  const machineDir = store.machineDir(machineName);
  const sshPublicKey = (await fs.readFile(path.join(machineDir, 'id_ed25519.pub'), 'utf8').catch(() => '')).trim();
  const record = await store.load(machineName);
  const options = parseOptions(definition.optionsSchema, { ...(input.rawOptions as RawDriverOptions) }, definition.flags);
  const parsedState = definition.stateSchema.safeParse(record.driver.state);
  if (!parsedState.success) {
    throw new TmachineError(`the ${definition.name} driver state of "${machineName}" is invalid: ${parsedState.error.issues[0]?.message ?? 'unknown'}`, {
      hint: `remove the machine with \`tmachine rm -f ${machineName}\``,
    });
  }
  const state = parsedState.data as Record<string, unknown>;
  let resources: ResourceEntry[] = [...record.driver.resources];
  const undo: UndoLog = {
    record: async (entry) => {
      resources = [...resources.filter((r) => !(r.kind === entry.kind && r.id === entry.id)), entry];
      await store.update(machineName, (r) => {
        r.driver.resources = resources;
      });
      debug('undo', `${machineName}: recorded ${entry.kind} ${entry.id}`);
    },
    forget: async (kind, id) => {
      resources = resources.filter((r) => !(r.kind === kind && r.id === id));
      await store.update(machineName, (r) => {
        r.driver.resources = resources;
      });
    },
    entries: () => resources,
  };
  const context: DriverContext<unknown, unknown> = {
    machineName,
    machineDir,
    cacheDir: store.cacheDir,
    options,
    state,
    sshPublicKey,
    undo,
    signal: input.signal ?? neverAborted,
    ...(input.cluster ? { cluster: input.cluster } : record.swarm?.cluster ? { cluster: { name: record.swarm.cluster } } : {}),
    ...(input.engineArch ? { engineArch: input.engineArch } : {}),
    report: input.report ?? (() => undefined),
    note: (message) => warn(`${machineName}: ${message}`),
    saveState: async () => {
      await store.update(machineName, (r) => {
        r.driver.state = { ...state };
      });
    },
  };
  return { driver: implementation.open(context), implementation, context };
}

/** The driver of an existing machine, with the options it was created with. */
export async function driverOf(store: Store, record: MachineRecord, report?: (message: string) => void, signal?: AbortSignal): Promise<Driver> {
  const definition = await loadDriverDefinition(record.driver.name);
  return (
    await instantiateDriver({
      store,
      machineName: record.name,
      definition,
      rawOptions: record.driver.options,
      ...(report ? { report } : {}),
      ...(signal ? { signal } : {}),
    })
  ).driver;
}

/**
 * The one removal path (rm, a failed create, an interrupted create): every resource in the
 * machine's undo log, newest first. A shared resource (a cluster's security group) that
 * another machine's log still names is left to the last one.
 */
export async function removeRecordedResources(store: Store, name: string, driver: Driver, undo: UndoLog, alsoRemoving: ReadonlySet<string> = new Set()): Promise<void> {
  // Machines this same command removes do not keep a shared resource alive: the last of
  // them to get there removes it (the driver waits out dependencies, e.g. instances still
  // terminating, and treats one already gone as removed).
  const others = (await store.list()).filter((n) => n !== name && !alsoRemoving.has(n));
  const inUseElsewhere = new Set<string>();
  for (const other of others) {
    const record = await store.load(other).catch(() => undefined);
    for (const r of record?.driver.resources ?? []) if (r.shared) inUseElsewhere.add(`${r.kind}\u0000${r.id}`);
  }
  for (const entry of [...undo.entries()].reverse()) {
    if (entry.shared && inUseElsewhere.has(`${entry.kind}\u0000${entry.id}`)) {
      debug('undo', `${name}: ${entry.kind} ${entry.id} is still used by another machine; kept`);
      await undo.forget(entry.kind, entry.id);
      continue;
    }
    await driver.removeResource(entry);
    await undo.forget(entry.kind, entry.id);
    debug('undo', `${name}: removed ${entry.kind} ${entry.id}`);
  }
}

/** A machine's driver and undo log, for removal. */
export async function undoOf(store: Store, record: MachineRecord): Promise<{ driver: Driver; undo: UndoLog }> {
  const definition = await loadDriverDefinition(record.driver.name);
  const instance = await instantiateDriver({ store, machineName: record.name, definition, rawOptions: record.driver.options });
  return { driver: instance.driver, undo: instance.context.undo };
}
