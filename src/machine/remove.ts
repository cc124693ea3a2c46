/**
 * rm: the driver removes what the machine's undo log names (newest first), then the store
 * entry goes (with -f even if the driver failed). The same path undoes a failed or
 * interrupted create.
 */
import { TmachineError } from '../errors.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { debug } from '../ui/log.js';
import { removeRecordedResources, undoOf } from './driver-instance.js';

export interface RemoveOptions {
  force?: boolean;
  /** Every machine the same command removes (their shared resources go with the last one). */
  together?: readonly string[];
}

export async function removeMachine(store: Store, record: MachineRecord, options: RemoveOptions): Promise<void> {
  try {
    const { driver, undo } = await undoOf(store, record);
    await removeRecordedResources(store, record.name, driver, undo, new Set(options.together ?? []));
  } catch (error) {
    if (!options.force) {
      const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
      throw new TmachineError(`could not remove the host of "${record.name}": ${message}`, {
        hint: `\`tmachine rm -f ${record.name}\` removes the store entry anyway`,
      });
    }
    debug('rm', `driver remove of ${record.name} failed, removing the store entry (-f): ${String(error)}`);
  }
  await store.withLock(record.name, () => store.remove(record.name));
}

/** Removes a machine that never finished (failed or interrupted create); never throws. */
export async function discardUnfinished(store: Store, name: string): Promise<string | undefined> {
  const record = await store.load(name).catch(() => undefined);
  if (!record) return undefined;
  try {
    const { driver, undo } = await undoOf(store, record);
    await removeRecordedResources(store, name, driver, undo);
    await store.remove(name);
    return undefined;
  } catch (error) {
    const why = error instanceof Error ? error.message.split('\n')[0] : String(error);
    debug('create', `clean-up of ${name} failed: ${why}`);
    return why;
  }
}
