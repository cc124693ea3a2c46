import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { shutdownCluster } from '../../swarm/ops/shutdown.js';
import { dryRunLines } from '../../swarm/ops/plan-output.js';
import { planProgress } from '../../ui/plan-progress.js';

export default class SwarmShutdown extends BaseCommand {
  static override summary = 'Ordered emergency shutdown: record stacks and managers, demote all managers but one, remove the stacks, stop workers, then the last manager';
  static override examples = ['<%= config.bin %> swarm shutdown --dry-run', '<%= config.bin %> swarm shutdown --machines'];
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    'dry-run': Flags.boolean({ description: 'Print the steps per host and change nothing' }),
    machines: Flags.boolean({ description: 'Stop the machines too, not only their engines' }),
    json: Flags.boolean({ description: 'Progress and result as JSON' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmShutdown);
    const store = await this.store();
    const dryRun = flags['dry-run'];
    const progress = planProgress(flags.json || dryRun ? 'silent' : 'auto');
    let result;
    try {
      result = await shutdownCluster(store, flags.cluster, { machines: flags.machines, dryRun, listener: progress.listener });
    } finally {
      await progress.finished();
    }
    if (flags.json) return this.printJson({ dryRun, steps: result.report.results, shutdown: result.record });
    if (dryRun) return this.print(dryRunLines(result.report, result.record.cluster).join('\n'));
    const stacks = result.record.stacks.map((s) => s.name).join(', ') || 'none';
    this.print(`cluster ${result.record.cluster} is shut down (recorded ${result.record.managers} managers and stacks: ${stacks}); bring it back with \`tmachine swarm start\``);
  }
}
