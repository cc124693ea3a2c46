/**
 * create: reserve the name, make an SSH key, let the driver make the host, reach it over
 * SSH (pinning its host key), provision the engine. A failure undoes what this create made
 * (unless --keep-on-failure), so the store never holds a half-made machine.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { loadDriverDefinition, resolveDriverOptions, storableOptions } from '../../drivers/registry.js';
import type { Driver, DriverDefinition, DriverOptions } from '../../drivers/types.js';
import { TmachineError } from '../errors.js';
import { generateKeyPair } from '../ssh/keys.js';
import { STORE_SCHEMA_VERSION, type EngineOptions, type MachineRecord } from '../store/machine-record.js';
import { validateMachineName, type Store } from '../store/store.js';
import type { UiTask } from '../ui/progress.js';
import { debug } from '../ui/log.js';
import { instantiateDriver } from './driver-instance.js';
import { connectMachine } from './connect.js';
import { prepareEngineSource, provisioningHost, provisionTasks, recordEngineSource, type EngineSource } from './provision.js';
import type { RemoteHost } from '../ssh/types.js';

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
  definition: DriverDefinition;
  options: DriverOptions;
  engine: EngineOptions;
}

/** Everything that can be checked before anything is made. */
export async function prepareCreate(store: Store, request: CreateRequest): Promise<PreparedCreate> {
  validateMachineName(request.name);
  if (await store.exists(request.name)) {
    throw new TmachineError(`machine "${request.name}" already exists`, { hint: 'choose another name or `tmachine rm` it first' });
  }
  const definition = await loadDriverDefinition(request.driver);
  const options = resolveDriverOptions(definition.flags, request.driverFlags);
  const engine: EngineOptions = { ...request.engine, install: request.engine.install ?? definition.defaultEngineInstall ?? 'bundle' };
  for (const ca of engine.registryCAs) {
    await fs.access(ca.caFile).catch(() => {
      throw new TmachineError(`registry CA file ${ca.caFile} does not exist`, { hint: 'check --engine-registry-ca HOST:PORT=FILE' });
    });
  }
  return { request, definition, options, engine };
}

/** One progress task per machine: host, SSH, provisioning; undone on failure. */
/** Wall time of each create phase per machine, for benchmarks (`swarm bootstrap --json`). */
export interface CreateTimings {
  hostMs: number;
  sshMs: number;
  engineMs: number;
}

export function createTask(store: Store, prepared: PreparedCreate, engineSource: () => Promise<EngineSource>, timings?: Map<string, CreateTimings>): UiTask {
  const { request, definition, options, engine } = prepared;
  const name = request.name;
  return {
    title: `${name}: create (${definition.name})`,
    run: async (ui) => {
      let driver: Driver | undefined;
      let connection: RemoteHost | undefined;
      const record: MachineRecord = {
        schemaVersion: STORE_SCHEMA_VERSION,
        name,
        createdAt: new Date().toISOString(),
        creating: true,
        driver: { name: definition.name, options: storableOptions(definition.flags, options), state: {} },
        ssh: { user: 'root', host: '', port: 22, keyPath: 'id_ed25519' },
        addresses: { public: '' },
        engine,
        ...(request.swarm ? { swarm: request.swarm } : {}),
      };
      await store.reserve(record);
      try {
        const keys = generateKeyPair(`tmachine-${name}`);
        const dir = store.machineDir(name);
        await store.writeSecretFile(path.join(dir, 'id_ed25519'), keys.privateKey);
        await store.writeSecretFile(path.join(dir, 'id_ed25519.pub'), keys.publicKey + '\n');
        for (const ca of engine.registryCAs) {
          // The CA travels with the machine, so later provisioning does not depend on the user's file.
          const copy = `registry-ca-${ca.registry.replace(/[^a-zA-Z0-9.-]/g, '_')}.crt`;
          await store.writeSecretFile(path.join(dir, copy), await fs.readFile(ca.caFile));
          ca.caFile = copy;
        }
        await store.save(record);

        driver = await instantiateDriver({ store, machineName: name, definition, options, state: record.driver.state, report: (m) => ui.report(m) });
        const times: CreateTimings = { hostMs: 0, sshMs: 0, engineMs: 0 };
        const timed = (key: keyof CreateTimings, work: () => Promise<void>) => async () => {
          const start = Date.now();
          await work();
          times[key] = Date.now() - start;
        };
        await ui.subtasks([
          {
            title: `${name}: make the host`,
            run: timed('hostMs', async () => {
              await driver!.preCreateCheck();
              await driver!.create();
            }),
          },
          {
            title: `${name}: reach it over SSH`,
            run: timed('sshMs', async () => {
              const target = await driver!.sshTarget();
              const addresses = await driver!.addresses();
              const updated = await store.update(name, (r) => {
                r.ssh = { user: target.user, host: target.host, port: target.port, keyPath: target.privateKeyPath ?? 'id_ed25519' };
                r.addresses = addresses;
              });
              Object.assign(record, updated);
              const opened = await connectMachine(store, record, {
                waitMs: 90_000,
                ...(target.publishedHostKeys ? { publishedHostKeys: target.publishedHostKeys } : {}),
              });
              connection = provisioningHost(store, record, opened);
            }),
          },
          {
            title: `${name}: provision the engine`,
            run: async (provisionUi) => {
              const start = Date.now();
              const source = await engineSource();
              const fresh = await recordEngineSource(store, name, source);
              await provisionUi.subtasks(await provisionTasks(store, fresh, connection!, source));
              times.engineMs = Date.now() - start;
            },
          },
        ]);
        await store.update(name, (r) => {
          delete r.creating;
        });
        timings?.set(name, times);
      } catch (error) {
        connection?.close();
        connection = undefined;
        if (request.keepOnFailure) {
          debug('create', `keeping ${name} after failure (--keep-on-failure)`);
        } else {
          await driver?.remove().catch((e: unknown) => debug('create', `clean-up of ${name} failed: ${String(e)}`));
          await store.remove(name);
        }
        throw error;
      } finally {
        connection?.close();
      }
    },
  };
}

/** The engine source is resolved once for all machines, so they all get the identical engine. */
export function sharedEngineSource(store: Store, engine: EngineOptions, report: (m: string) => void): () => Promise<EngineSource> {
  let pending: Promise<EngineSource> | undefined;
  return () => (pending ??= prepareEngineSource(store, engine, report));
}
