import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { recoverCluster } from '../../swarm/operations.js';

export default class SwarmRecover extends BaseCommand {
  static override summary = 'Rebuild a swarm that lost quorum from a surviving manager (--force-new-cluster), then restore the manager count';
  static override args = { survivor: Args.string({ description: 'Surviving manager (default: the first manager that answers)' }) };
  static override flags = { cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmRecover);
    const lines = await recoverCluster(await this.store(), args.survivor, flags.cluster);
    this.print(lines.join('\n'));
  }
}
