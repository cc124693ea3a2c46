import { Args } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { setAvailability } from '../../swarm/operations.js';

export default class SwarmActivate extends BaseCommand {
  static override summary = 'Make a drained or paused node take tasks again';
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(SwarmActivate);
    await setAvailability(await this.store(), args.name, 'active');
    this.print(`${args.name}: availability active`);
  }
}
