import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { provisionMachines } from '../machine/plans.js';

export default class Provision extends BaseCommand {
  static override summary = 'Provision machines again: engine, daemon config, TLS, firewall (only what differs)';
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name(s)', required: true }) };
  static override flags = { 'dry-run': Flags.boolean({ description: 'Show what would change, change nothing' }) };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Provision);
    await provisionMachines(await this.store(), argv as string[], { dryRun: flags['dry-run'] });
  }
}
