import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { leaveMachine } from '../../swarm/operations.js';

export default class SwarmLeave extends BaseCommand {
  static override summary = 'Take a machine out of its swarm (a manager is demoted first; quorum is kept unless --force)';
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };
  static override flags = { force: Flags.boolean({ description: 'Leave even if that breaks quorum or removes the last manager' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmLeave);
    await leaveMachine(await this.store(), args.name, flags.force);
    this.print(`${args.name} left the swarm`);
  }
}
