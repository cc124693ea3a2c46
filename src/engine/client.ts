/**
 * The Docker Engine API client every step uses (dockerode over TLS with the store's client
 * certificate). The engine never answers without a client certificate (tlsverify).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import { dockerEngine } from '../../drivers/kit/engine.js';
import type { Store } from '../store/store.js';
import type { MachineRecord } from '../store/machine-record.js';

export interface EngineTls {
  ca: string;
  cert: string;
  key: string;
}

export async function clientTls(store: Store): Promise<EngineTls> {
  const read = (f: string) => fs.readFile(path.join(store.certsDir, f), 'utf8');
  const [ca, cert, key] = await Promise.all([read('ca.pem'), read('cert.pem'), read('key.pem')]);
  return { ca, cert, key };
}

export function engineUrl(record: MachineRecord): string {
  return `tcp://${record.addresses.public}:${record.engine.port}`;
}

export function engineClient(record: MachineRecord, tls: EngineTls, timeoutMs = 60_000): Docker {
  const host = record.addresses.public.includes(':') ? `[${record.addresses.public}]` : record.addresses.public;
  return dockerEngine({ endpoint: `tcp://${host}:${record.engine.port}`, tls, timeoutMs });
}

export async function machineEngine(store: Store, record: MachineRecord, timeoutMs?: number): Promise<Docker> {
  return engineClient(record, await clientTls(store), timeoutMs);
}
