import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { setRole } from '../../swarm/operations.js';

export default class SwarmDemote extends BaseCommand {
  static override summary = 'Demote a manager to worker (refused when it would break quorum, unless --force)';
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };
  static override flags = { force: Flags.boolean({ description: 'Even if quorum would be lost' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmDemote);
    await setRole(await this.store(), args.name, 'worker', flags.force);
    this.print(`${args.name} is now a worker`);
  }
}
