/** Builds a driver instance for a machine, wiring its state to the machine record. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { loadDriverDefinition } from '../../drivers/registry.js';
import type { Driver, DriverDefinition, DriverOptions, DriverState } from '../../drivers/types.js';
import type { Store } from '../store/store.js';
import type { MachineRecord } from '../store/machine-record.js';

export interface DriverInstanceInput {
  store: Store;
  machineName: string;
  definition: DriverDefinition;
  options: DriverOptions;
  state: DriverState;
  report?: (message: string) => void;
}

export async function instantiateDriver(input: DriverInstanceInput): Promise<Driver> {
  const factory = await input.definition.load();
  const machineDir = input.store.machineDir(input.machineName);
  const pubKeyFile = path.join(machineDir, 'id_ed25519.pub');
  const sshPublicKey = await fs.readFile(pubKeyFile, 'utf8').catch(() => '');
  const state = input.state;
  return factory({
    machineName: input.machineName,
    machineDir,
    cacheDir: input.store.cacheDir,
    options: input.options,
    state,
    sshPublicKey: sshPublicKey.trim(),
    report: input.report ?? (() => undefined),
    saveState: async () => {
      await input.store.update(input.machineName, (record) => {
        record.driver.state = { ...state };
      });
    },
  });
}

/** The driver of an existing machine, with the options it was created with. */
export async function driverOf(store: Store, record: MachineRecord, report?: (message: string) => void): Promise<Driver> {
  const definition = await loadDriverDefinition(record.driver.name);
  return instantiateDriver({
    store,
    machineName: record.name,
    definition,
    options: record.driver.options as DriverOptions,
    state: record.driver.state,
    ...(report ? { report } : {}),
  });
}
