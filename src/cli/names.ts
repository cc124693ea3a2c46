/** The machine names a command that makes several machines works on. */
import { TmachineError } from '../errors.js';
import { validateMachineName, type Store } from '../store/store.js';

/**
 * `create A B C`, or `create -n 3 --prefix worker`: worker1, worker2, worker3, skipping
 * numbers already taken, so running it again adds three more (worker4..worker6).
 */
export async function machineNames(store: Store, given: string[], count: number | undefined, prefix: string | undefined): Promise<string[]> {
  if (count !== undefined && given.length > 0) {
    throw new TmachineError(`give machine names or --count, not both (names: ${given.join(', ')})`, { hint: 'e.g. `create -n 3 --prefix worker`' });
  }
  if (count === undefined) {
    if (given.length === 0) throw new TmachineError('create needs a machine name', { hint: 'tmachine create NAME [NAME...], or -n COUNT --prefix PREFIX' });
    const seen = new Set<string>();
    for (const name of given) {
      validateMachineName(name);
      if (seen.has(name)) throw new TmachineError(`machine name "${name}" is given twice`, { hint: 'give each name once' });
      seen.add(name);
    }
    return given;
  }
  const base = prefix ?? 'machine';
  validateMachineName(`${base}1`);
  const names: string[] = [];
  for (let i = 1; names.length < count; i++) {
    const name = `${base}${i}`;
    if (!(await store.exists(name))) names.push(name);
  }
  for (const name of names) validateMachineName(name);
  return names;
}
