/**
 * Driver flags are not known until the driver is: `create` finds --driver in argv first,
 * then parses with the driver's flags added (oclif flags built from the driver definition).
 */
import { Flags } from '@oclif/core';
import type { AnyDriverDefinition as DriverDefinition, DriverFlag } from '../../drivers/kit/index.js';

export function driverNameFromArgv(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '--driver' || a === '-d') return argv[i + 1];
    if (a.startsWith('--driver=')) return a.slice('--driver='.length);
  }
  return undefined;
}

function oclifFlag(flag: DriverFlag) {
  const common = {
    description: flag.description,
    helpGroup: 'DRIVER',
    ...(flag.env ? { env: flag.env } : {}),
    ...(flag.aliases ? { aliases: flag.aliases } : {}),
  };
  switch (flag.type) {
    case 'boolean':
      return Flags.boolean({ ...common, allowNo: true });
    case 'number':
      return Flags.string({ ...common, ...(flag.default !== undefined ? { default: String(flag.default) } : {}) });
    case 'string[]':
      return Flags.string({ ...common, multiple: true });
    default:
      return Flags.string({ ...common, ...(flag.default !== undefined ? { default: String(flag.default) } : {}) });
  }
}

/** oclif flag definitions for a driver (defaults shown in help; resolution happens in the registry). */
export function oclifDriverFlags(definition: DriverDefinition): Record<string, ReturnType<typeof oclifFlag>> {
  return Object.fromEntries(definition.flags.map((f) => [f.name, oclifFlag(f)]));
}
