import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { driverNameFromArgv, oclifDriverFlags } from '../cli/driver-flags.js';
import { engineFlags, engineOptionsFromFlags } from '../cli/engine-flags.js';
import { loadDriverDefinition } from '../../drivers/registry.js';
import { chooseDefaultDriver } from '../machine/default-driver.js';
import { checkCapacity, prepareCreate, type PreparedCreate } from '../machine/create.js';
import { createMachines } from '../machine/plans.js';
import { info } from '../ui/log.js';
import { withInterrupts } from '../ui/interrupt.js';

export default class Create extends BaseCommand {
  static override summary = 'Create machines: make the hosts, install the engine, open the swarm ports';
  static override description =
    'Creates one or more machines in parallel with the same driver and engine. Driver flags depend on the driver: `tmachine create --driver NAME --help` lists them.';
  static override examples = [
    '<%= config.bin %> create n1',
    '<%= config.bin %> create --driver generic --generic-ip-address 203.0.113.10 --generic-ssh-user ubuntu db1',
    '<%= config.bin %> create --driver docker n1 n2 n3',
  ];
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name(s)', required: true }) };
  static override flags = {
    driver: Flags.string({ char: 'd', description: 'Driver: docker (default when a local engine answers), generic, or a plugin' }),
    'keep-on-failure': Flags.boolean({ description: 'Keep what a failed create made, for debugging' }),
    ...engineFlags,
  };

  async run(): Promise<void> {
    const driverName = driverNameFromArgv(this.argv) ?? (await chooseDefaultDriver());
    const definition = await loadDriverDefinition(driverName);
    const { argv, flags } = await this.parse({
      ...Create,
      flags: { ...Create.flags, ...Create.baseFlags, ...oclifDriverFlags(definition) },
    });
    const names = argv as string[];
    const store = await this.store();
    const engine = engineOptionsFromFlags(flags, definition.defaultEngineInstall ?? 'bundle');
    const prepared: PreparedCreate[] = [];
    for (const name of names) {
      prepared.push(
        await prepareCreate(store, {
          name,
          driver: driverName,
          driverFlags: flags as Record<string, unknown>,
          engine,
          keepOnFailure: flags['keep-on-failure'],
        }),
      );
    }
    await checkCapacity(definition, names.length);
    await withInterrupts(store, (signal) => createMachines(store, prepared, { keepOnFailure: flags['keep-on-failure'], signal }));
    for (const name of names) info(`Machine "${name}" is ready. To point your Docker client at it: eval "$(tmachine env ${name})"`);
  }
}
