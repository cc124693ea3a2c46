import fs from 'node:fs/promises';
import path from 'node:path';
import type { EngineTls } from '../engine/client.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';

/** The CA and client certificate this machine's engine trusts (its DOCKER_CERT_PATH). */
export async function machineTls(store: Store, record: MachineRecord): Promise<EngineTls | undefined> {
  const dir = store.machineDir(record.name);
  try {
    const [ca, cert, key] = await Promise.all(['ca.pem', 'cert.pem', 'key.pem'].map((f) => fs.readFile(path.join(dir, f), 'utf8')));
    return { ca: ca!, cert: cert!, key: key! };
  } catch {
    return undefined;
  }
}

