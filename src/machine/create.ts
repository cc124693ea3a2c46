/**
 * create: everything checkable is checked first (prepareCreate); then each machine goes
 * through one pipeline (src/machine/pipeline.ts): reserve the name, make an SSH key, let
 * the driver make the host (every resource in the undo log), reach it over SSH (pinning
 * the published host key), provision the engine. A machine that did not finish, failed or
 * interrupted, is removed through its undo log unless --keep-on-failure.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import { loadDriverDefinition } from '../../drivers/registry.js';
import { storableOptions, type AnyDriverDefinition, type RawDriverOptions } from '../../drivers/kit/index.js';
import { TmachineError } from '../errors.js';
import { verifyBundleLayout } from '../engine/bundle.js';
import type { EngineOptions, MachineRecord } from '../store/machine-record.js';
import { validateMachineName, type Store } from '../store/store.js';
import { resolveDriverOptions } from './driver-instance.js';

export interface CreateRequest {
  name: string;
  driver: string;
  /** Raw driver flag values (strings from the CLI, typed values from a cluster file). */
  driverFlags: Record<string, unknown>;
  /** Engine options; `install` undefined means the driver's default. */
  engine: Omit<EngineOptions, 'install'> & { install?: EngineOptions['install'] };
  keepOnFailure?: boolean;
  swarm?: MachineRecord['swarm'];
}

export interface PreparedCreate {
  request: CreateRequest;
  definition: AnyDriverDefinition;
  /** Flag values after env/default/coercion (stored, minus secrets). */
  rawOptions: RawDriverOptions;
  /** What gets stored in the record. */
  storedOptions: Record<string, unknown>;
  engine: EngineOptions;
}

/** Everything that can be checked before anything is made. */
export async function prepareCreate(store: Store, request: CreateRequest): Promise<PreparedCreate> {
  validateMachineName(request.name);
  if (await store.exists(request.name)) {
    throw new TmachineError(`machine "${request.name}" already exists`, { hint: 'choose another name or `tmachine rm` it first' });
  }
  const definition = await loadDriverDefinition(request.driver);
  const { raw } = resolveDriverOptions(definition, request.driverFlags);
  // Registry CA objects are copied: parallel creates must not share (and mutate) one list.
  const engine: EngineOptions = {
    ...request.engine,
    registryCAs: request.engine.registryCAs.map((ca) => ({ ...ca })),
    install: request.engine.install ?? definition.defaultEngineInstall ?? 'bundle',
  };
  for (const ca of engine.registryCAs) {
    const pem = await fs.readFile(ca.caFile, 'utf8').catch(() => {
      throw new TmachineError(`registry CA file ${ca.caFile} does not exist`, { hint: 'check --engine-registry-ca HOST:PORT=FILE' });
    });
    // Checked here, not on the host: a file that is no certificate would only fail at the first pull.
    try {
      new X509Certificate(pem);
    } catch {
      throw new TmachineError(`registry CA file ${ca.caFile} is not a PEM certificate`, { hint: 'pass the registry CA certificate (-----BEGIN CERTIFICATE-----) as --engine-registry-ca HOST:PORT=FILE' });
    }
  }
  if (engine.install === 'bundle' && engine.bundle && !/^https?:\/\//.test(engine.bundle)) await verifyBundleLayout(engine.bundle);
  return { request, definition, rawOptions: raw, storedOptions: storableOptions(definition.flags, raw), engine };
}

/** Refuses a count the driver cannot hold here, before anything is made. */
export async function checkCapacity(definition: AnyDriverDefinition, count: number): Promise<void> {
  if (!definition.capacity || count === 0) return;
  const { max, reason } = await definition.capacity();
  if (count > max) {
    throw new TmachineError(`${count} machines do not fit on the ${definition.name} driver here: ${reason}`, {
      hint: `ask for at most ${max}, or use another driver`,
    });
  }
}
