/** start/stop/restart/kill over one or more machines, in parallel. */
import type { Store } from '../store/store.js';
import { runTasks } from '../ui/progress.js';
import { driverOf } from './driver-instance.js';

export type PowerVerb = 'start' | 'stop' | 'restart' | 'kill';

export async function powerAction(store: Store, names: string[], verb: PowerVerb): Promise<void> {
  const records = await Promise.all(names.map((n) => store.load(n)));
  await runTasks(
    records.map((record) => ({
      title: `${record.name}: ${verb}`,
      run: async (ui) => {
        const driver = await driverOf(store, record, (m) => ui.report(m));
        await driver[verb]();
      },
    })),
    { concurrent: true, continueOnError: true },
  );
}
