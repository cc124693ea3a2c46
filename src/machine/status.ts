/**
 * State checks for ls/status: the driver's view of the host, then the engine's version over
 * TLS, all inside one bounded timeout so a dead host never stalls a listing.
 */
import { isDriverError, type HostState } from '../../drivers/kit/index.js';
import { withDeadline } from '../../drivers/kit/index.js';
import { clientTls, engineClient, engineUrl, type EngineTls } from '../engine/client.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { driverOf } from './driver-instance.js';

export interface MachineStatus {
  name: string;
  active: boolean;
  driver: string;
  state: HostState | 'creating' | 'timeout';
  url: string;
  swarm: string;
  engineVersion: string;
  error: string;
}

export function isActive(record: MachineRecord): boolean {
  return Boolean(record.addresses.public) && process.env['DOCKER_HOST'] === engineUrl(record);
}

export async function machineStatus(store: Store, record: MachineRecord, timeoutMs: number, tls?: EngineTls): Promise<MachineStatus> {
  const deadline = Date.now() + timeoutMs;
  const status: MachineStatus = {
    name: record.name,
    active: isActive(record),
    driver: record.driver.name,
    state: 'unknown',
    url: record.addresses.public ? engineUrl(record) : '',
    swarm: record.swarm?.role ?? '',
    engineVersion: '',
    error: '',
  };
  if (record.creating) {
    status.state = 'creating';
    return status;
  }
  try {
    const driver = await driverOf(store, record);
    status.state = await withDeadline(driver.state(), Math.max(1, deadline - Date.now()), 'the driver');
  } catch (error) {
    status.state = isDriverError(error, 'timeout') ? 'timeout' : 'error';
    status.error = firstLine(error);
    return status;
  }
  if (status.state !== 'running') return status;
  try {
    const docker = engineClient(record, tls ?? (await clientTls(store)), Math.max(1, deadline - Date.now()));
    const version = await withDeadline(docker.version(), Math.max(1, deadline - Date.now()), 'the engine');
    status.engineVersion = version.Version;
  } catch (error) {
    status.error = `engine: ${firstLine(error)}`;
  }
  return status;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}
