import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { applyImport, dockerMachineStorePath, planImport } from '../cli/docker-machine-import.js';
import { TmachineError } from '../errors.js';
import { info, warn } from '../ui/log.js';

export default class Import extends BaseCommand {
  static override summary = 'Adopt the machines of a Docker Machine store (it is only read, never changed)';
  static override description =
    'Reads each machine\'s config.json (Docker Machine 0.16 layout), copies its SSH key and its certificates into the tmachine store (or issues new ones from tmachine\'s CA with --regenerate-certs), and pins the host key on first contact. Cloud and VirtualBox machines keep their identity when tmachine has that driver; a machine whose driver tmachine lacks is skipped with the reason.';
  static override examples = ['<%= config.bin %> import', '<%= config.bin %> import --from ~/.docker/machine db1 db2', '<%= config.bin %> import --regenerate-certs db1'];
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machines to import (default: all)' }) };
  static override flags = {
    from: Flags.string({ description: 'Docker Machine store (default: $MACHINE_STORAGE_PATH or ~/.docker/machine)' }),
    'regenerate-certs': Flags.boolean({ description: "Issue new engine certificates from tmachine's CA (reconfigures the engine's TLS over SSH)" }),
    'no-contact': Flags.boolean({ description: 'Do not connect now; the host key is pinned on the first command that reaches it' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Import);
    const store = await this.store();
    const from = dockerMachineStorePath(flags.from);
    const plan = await planImport(store, from, argv as string[]);
    const imported: string[] = [];
    for (const entry of plan) {
      if (entry.skip) {
        warn(`skipped ${entry.name}: ${entry.skip}`);
        continue;
      }
      await applyImport(store, entry);
      imported.push(entry.name);
      info(`imported ${entry.name} (${entry.record!.driver.name}, ${entry.record!.addresses.public})${entry.note ? `; ${entry.note}` : ''}`);
    }
    if (imported.length === 0) {
      throw new TmachineError(`nothing imported from ${from}`, { hint: plan.length === 0 ? 'the store has no machines' : 'see the lines above for why each machine was skipped' });
    }
    if (flags['regenerate-certs']) {
      const { provisionMachines } = await import('../machine/plans.js');
      await provisionMachines(store, imported, { forceCerts: true });
    } else if (!flags['no-contact']) {
      // First contact now: pins each host key and says which hosts do not answer.
      const { connectMachine } = await import('../machine/connect.js');
      await Promise.all(
        imported.map(async (name) => {
          try {
            (await connectMachine(store, await store.load(name), { waitMs: 15_000 })).close();
          } catch (error) {
            warn(`${name}: not reached over SSH now (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); its host key is pinned on first contact`);
          }
        }),
      );
    }
  }
}
