import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { driverNameFromArgv, oclifDriverFlags } from '../cli/driver-flags.js';
import { refuseDockerMachineFlags } from '../cli/docker-machine-compat.js';
import { engineFlags, engineOptionsFromFlags } from '../cli/engine-flags.js';
import { machineNames } from '../cli/names.js';
import { loadDriverDefinition } from '../../drivers/registry.js';
import type { AnyDriverDefinition } from '../../drivers/kit/index.js';
import { chooseDefaultDriver } from '../machine/default-driver.js';
import { checkCapacity, prepareCreate, type PreparedCreate } from '../machine/create.js';
import { createMachines } from '../machine/plans.js';
import { info } from '../ui/log.js';
import { withInterrupts } from '../ui/interrupt.js';

export default class Create extends BaseCommand {
  static override summary = 'Create machines: make the hosts, install the engine, open the swarm ports';
  static override description =
    'Creates one or more machines in parallel with the same driver and engine (`create A B C`, or `-n 3 --prefix worker` for worker1..worker3). Driver flags depend on the driver: `tmachine create --driver NAME --help` lists them.';
  static override examples = [
    '<%= config.bin %> create n1',
    '<%= config.bin %> create --driver generic --generic-ip-address 203.0.113.10 --generic-ssh-user ubuntu db1',
    '<%= config.bin %> create --driver docker n1 n2 n3',
    '<%= config.bin %> create -d docker --engine-label role=web -n 3 --prefix worker',
  ];
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name(s)' }) };
  static override flags = {
    driver: Flags.string({ char: 'd', description: 'Driver: docker (default when a local engine answers), generic, or a plugin', env: 'MACHINE_DRIVER' }),
    count: Flags.integer({ char: 'n', description: 'Create this many machines named PREFIX1, PREFIX2, ... (numbers already taken are skipped)', min: 1 }),
    prefix: Flags.string({ description: 'Name prefix for --count', dependsOn: ['count'] }),
    'keep-on-failure': Flags.boolean({ description: 'Keep what a failed create made, for debugging' }),
    ...engineFlags,
  };

  async run(): Promise<void> {
    const driverName = driverNameFromArgv(this.argv) ?? process.env['MACHINE_DRIVER'] ?? (await chooseDefaultDriver());
    // A Docker Machine flag tmachine does not take is named with its doc row, even when
    // the driver it belongs to is not installed here.
    let definition: AnyDriverDefinition | undefined;
    let loadError: unknown;
    try {
      definition = await loadDriverDefinition(driverName);
    } catch (error) {
      loadError = error;
    }
    refuseDockerMachineFlags(this.argv, definition);
    if (!definition) throw loadError;
    const { argv, flags } = await this.parse({
      ...Create,
      flags: { ...Create.flags, ...Create.baseFlags, ...oclifDriverFlags(definition) },
    });
    const store = await this.store();
    const names = await machineNames(store, argv as string[], flags.count, flags.prefix);
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
