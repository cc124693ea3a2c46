import { Args } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { setLabels } from '../../swarm/operations.js';

export default class SwarmLabel extends BaseCommand {
  static override summary = 'Set (k=v) or remove (k-) node labels, for placement constraints';
  static override examples = ['<%= config.bin %> swarm label tm-worker-1 function=production', '<%= config.bin %> swarm label tm-worker-1 function-'];
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };

  async run(): Promise<void> {
    const { args, argv } = await this.parse(SwarmLabel);
    const labels = await setLabels(await this.store(), args.name, (argv as string[]).slice(1));
    this.print(Object.entries(labels).map(([k, v]) => `${k}=${v}`).join('\n'));
  }
}
