import { Args } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { setAvailability } from '../../swarm/operations.js';

export default class SwarmDrain extends BaseCommand {
  static override summary = 'Drain a node: its tasks move elsewhere';
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(SwarmDrain);
    await setAvailability(await this.store(), args.name, 'drain');
    this.print(`${args.name}: availability drain`);
  }
}
