import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { removeStack } from '../../swarm/operations.js';

export default class SwarmRm extends BaseCommand {
  static override summary = 'Remove a stack from the swarm';
  static override args = { stack: Args.string({ description: 'Stack name', required: true }) };
  static override flags = { cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmRm);
    await removeStack(await this.store(), args.stack, flags.cluster);
    this.print(`stack ${args.stack} removed`);
  }
}
