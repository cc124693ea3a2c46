/** With no --driver: the first built-in driver whose detection says it can work here (the docker driver), else an error. */
import { builtInDefinitions, builtInDriverNames } from '../../drivers/registry.js';
import { TmachineError } from '../errors.js';

/** Drivers asked in this order; the local lab comes first, as minikube's and kind's default. */
const PREFERRED = ['docker'];

export async function chooseDefaultDriver(): Promise<string> {
  const definitions = await builtInDefinitions();
  const ordered = [...definitions].sort((a, b) => rank(a.name) - rank(b.name));
  const reasons: string[] = [];
  for (const definition of ordered) {
    if (!definition.detect || !PREFERRED.includes(definition.name)) continue;
    const detection = await definition.detect();
    if (detection.usable) return definition.name;
    reasons.push(`${definition.name}: ${detection.reason}`);
  }
  throw new TmachineError(`no --driver given and no driver can work here without one (${reasons.join('; ')})`, {
    hint: `pass --driver with one of: ${builtInDriverNames().join(', ')}`,
  });
}

function rank(name: string): number {
  const i = PREFERRED.indexOf(name);
  return i < 0 ? PREFERRED.length : i;
}
