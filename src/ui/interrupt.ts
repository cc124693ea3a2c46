/**
 * Ctrl-C and SIGTERM for long commands: the first stops the work (the plan's signal aborts,
 * unfinished machines are removed through their undo logs, the command exits non-zero with
 * one line); a second exits at once and says what is left and which command cleans it up.
 */
import { TmachineError } from '../errors.js';
import type { Store } from '../store/store.js';

export async function withInterrupts<T>(store: Store, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let count = 0;
  const onSignal = (name: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      process.stderr.write(`\n${name === 'SIGINT' ? 'Interrupted' : 'Terminated'}: stopping, and removing what unfinished machines made (press Ctrl-C again to exit at once)\n`);
      controller.abort(new TmachineError('interrupted; unfinished machines were removed', { kind: 'interrupted', exitCode: 130, hint: 'run the same command again to finish the work' }));
      return;
    }
    void leftovers(store).then((left) => {
      process.stderr.write(
        left.length > 0
          ? `Error: interrupted twice; left unfinished: ${left.join(', ')} (remove them with \`tmachine rm -f -y ${left.join(' ')}\`)\n`
          : 'Error: interrupted twice; nothing unfinished is left\n',
      );
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await work(controller.signal);
    if (controller.signal.aborted) throw controller.signal.reason;
    return result;
  } catch (error) {
    // Whatever failed after the abort failed because of it: say "interrupted", not the symptom.
    if (controller.signal.aborted) throw controller.signal.reason;
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Machines still marked as being created. */
async function leftovers(store: Store): Promise<string[]> {
  const names = await store.list().catch(() => [] as string[]);
  const left: string[] = [];
  for (const name of names) {
    const record = await store.load(name).catch(() => undefined);
    if (!record || record.creating) left.push(name);
  }
  return left;
}
