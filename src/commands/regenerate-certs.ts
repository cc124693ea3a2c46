import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { driverOf } from '../machine/driver-instance.js';
import { provisionMachines } from '../machine/plans.js';

export default class RegenerateCerts extends BaseCommand {
  static override summary = "Issue new server certificates (with the machine's current addresses) and restart the engine";
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name(s)', required: true }) };
  static override flags = { force: Flags.boolean({ char: 'f', description: 'Accepted for Docker Machine compatibility; never asks' }) };

  async run(): Promise<void> {
    const { argv } = await this.parse(RegenerateCerts);
    const store = await this.store();
    const names = argv as string[];
    // Addresses may have changed (the reason to regenerate): ask the driver first.
    for (const name of names) {
      const record = await store.load(name);
      const addresses = await (await driverOf(store, record)).addresses();
      await store.update(name, (r) => {
        if (r.ssh.host === r.addresses.public) r.ssh.host = addresses.public;
        r.addresses = addresses;
      });
    }
    await provisionMachines(store, names, { forceCerts: true });
  }
}
