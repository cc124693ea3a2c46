/** Docker Machine flags on tmachine's command line: the ones tmachine does not take are refused by name. */
import type { AnyDriverDefinition } from '../../drivers/kit/index.js';
import { TmachineError } from '../errors.js';
import { dockerMachineFlagRefusal } from './docker-machine-flags.js';

/** Throws the one line for the first Docker Machine flag in argv that tmachine does not support. */
export function refuseDockerMachineFlags(argv: string[], definition: AnyDriverDefinition | undefined): void {
  const known = new Set<string>();
  for (const flag of definition?.flags ?? []) {
    known.add(flag.name);
    for (const alias of flag.aliases ?? []) known.add(alias);
  }
  for (const arg of argv) {
    if (arg === '--') break;
    if (!arg.startsWith('--') || arg.length < 3) continue;
    const name = arg.slice(2).split('=')[0]!.replace(/^no-/, '');
    if (known.has(name) || known.has(arg.slice(2).split('=')[0]!)) continue;
    const refusal = dockerMachineFlagRefusal(name);
    if (refusal) throw new TmachineError(refusal.message, { hint: refusal.hint });
  }
}
