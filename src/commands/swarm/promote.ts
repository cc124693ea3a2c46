import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { setRole } from '../../swarm/operations.js';

export default class SwarmPromote extends BaseCommand {
  static override summary = 'Promote a worker to manager';
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };
  static override flags = { force: Flags.boolean({ description: 'Even if quorum would be lost' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmPromote);
    await setRole(await this.store(), args.name, 'manager', flags.force);
    this.print(`${args.name} is now a manager`);
  }
}
