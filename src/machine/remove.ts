/** rm: the driver removes the host, then the store entry goes (with -f even if the driver failed). */
import { TmachineError } from '../errors.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { debug } from '../ui/log.js';
import { driverOf } from './driver-instance.js';

export async function removeMachine(store: Store, record: MachineRecord, options: { force?: boolean }): Promise<void> {
  await store.withLock(record.name, async () => {
    try {
      const driver = await driverOf(store, record);
      await driver.remove();
    } catch (error) {
      if (!options.force) {
        const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
        throw new TmachineError(`could not remove the host of "${record.name}": ${message}`, {
          hint: `\`tmachine rm -f ${record.name}\` removes the store entry anyway`,
        });
      }
      debug('rm', `driver remove of ${record.name} failed, removing the store entry (-f): ${String(error)}`);
    }
    await store.remove(record.name);
  });
}
