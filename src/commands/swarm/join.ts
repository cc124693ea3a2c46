import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { joinMachine } from '../../swarm/operations.js';

export default class SwarmJoin extends BaseCommand {
  static override summary = 'Join an existing machine to the swarm';
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };
  static override flags = {
    role: Flags.string({ description: 'manager or worker', options: ['manager', 'worker'], default: 'worker' }),
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmJoin);
    await joinMachine(await this.store(), args.name, flags.role as 'manager' | 'worker', flags.cluster);
    this.print(`${args.name} joined as ${flags.role}`);
  }
}
