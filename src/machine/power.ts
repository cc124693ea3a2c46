/**
 * start/stop/restart/kill over one or more machines, in parallel. After a start or restart
 * the driver is asked for the addresses again: a cloud instance may come back on another
 * one, and then the record, the SSH target and the server certificate follow (the
 * regenerate-certs path: provisioning reissues a certificate whose addresses moved).
 */
import type { Store } from '../store/store.js';
import { info } from '../ui/log.js';
import { runTasks } from '../ui/progress.js';
import { driverOf } from './driver-instance.js';
import type { Driver } from '../../drivers/kit/index.js';

export type PowerVerb = 'start' | 'stop' | 'restart' | 'kill';

export async function powerAction(store: Store, names: string[], verb: PowerVerb): Promise<void> {
  const records = await Promise.all(names.map((n) => store.load(n)));
  const moved: string[] = [];
  await runTasks(
    records.map((record) => ({
      title: `${record.name}: ${verb}`,
      run: async (ui) => {
        const driver = await driverOf(store, record, (m) => ui.report(m));
        await driver[verb]();
        if ((verb === 'start' || verb === 'restart') && (await refreshAddresses(store, record.name, driver))) moved.push(record.name);
      },
    })),
    { concurrent: true, continueOnError: true },
  );
  if (moved.length > 0) {
    info(`${moved.join(', ')}: new address; issuing certificates for it`);
    const { provisionMachines } = await import('./plans.js');
    await provisionMachines(store, moved);
  }
}

/** Records the driver's current addresses and SSH target; true when they changed. */
export async function refreshAddresses(store: Store, name: string, driver: Driver): Promise<boolean> {
  const addresses = await driver.addresses();
  const target = await driver.sshTarget();
  let changed = false;
  await store.update(name, (r) => {
    changed = r.addresses.public !== addresses.public || (r.addresses.private ?? '') !== (addresses.private ?? '') || r.ssh.host !== target.host || r.ssh.port !== target.port;
    r.addresses = addresses;
    r.ssh.host = target.host;
    r.ssh.port = target.port;
  });
  return changed;
}
