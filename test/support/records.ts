/** Machine records as `create --driver generic` writes them, for tests that need no host. */
import { STORE_SCHEMA_VERSION, type MachineRecord } from '../../src/store/machine-record.js';

export function genericRecord(name: string, address: string, extra: Partial<MachineRecord> = {}): MachineRecord {
  return {
    schemaVersion: STORE_SCHEMA_VERSION,
    name,
    createdAt: new Date().toISOString(),
    driver: { name: 'generic', options: { 'generic-ip-address': address }, state: {}, resources: [] },
    ssh: { user: 'root', host: address, port: 1, keyPath: 'id_ed25519' },
    addresses: { public: address },
    engine: { install: 'none', opts: [], env: [], labels: [], insecureRegistries: [], registryMirrors: [], registryCAs: [], port: 2376 },
    ...extra,
  };
}

