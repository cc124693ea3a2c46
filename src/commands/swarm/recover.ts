import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { recoverCluster, recoveryLines } from '../../swarm/ops/recover.js';

export default class SwarmRecover extends BaseCommand {
  static override summary = 'Bring a swarm back to its manager count: after lost quorum rebuild it from a survivor (--force-new-cluster), rejoin stale nodes, promote healthy ones';
  static override args = { survivor: Args.string({ description: 'Surviving manager (default: the first manager that answers)' }) };
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    json: Flags.boolean({ description: 'JSON output' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmRecover);
    const report = await recoverCluster(await this.store(), args.survivor, flags.cluster);
    if (flags.json) return this.printJson(report);
    this.print([...report.done, `managers: ${report.managers} of ${report.managersWanted}`, ...recoveryLines(report, new Set()).slice(1)].join('\n'));
  }
}
