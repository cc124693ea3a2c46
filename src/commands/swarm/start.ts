import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { startCluster } from '../../swarm/ops/shutdown.js';
import { dryRunLines } from '../../swarm/ops/plan-output.js';
import { planProgress } from '../../ui/plan-progress.js';

export default class SwarmStart extends BaseCommand {
  static override summary = 'Start a cluster after `swarm shutdown`: last manager first, then the others, promote back, redeploy the recorded stacks';
  static override examples = ['<%= config.bin %> swarm start --first registry'];
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    first: Flags.string({ description: 'Stack to redeploy (and wait for) before the others, such as a registry' }),
    'dry-run': Flags.boolean({ description: 'Print the steps per host and change nothing' }),
    json: Flags.boolean({ description: 'Progress and result as JSON' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmStart);
    const store = await this.store();
    const dryRun = flags['dry-run'];
    const progress = planProgress(flags.json || dryRun ? 'silent' : 'auto');
    let result;
    try {
      result = await startCluster(store, flags.cluster, { ...(flags.first ? { first: flags.first } : {}), dryRun, listener: progress.listener });
    } finally {
      await progress.finished();
    }
    if (flags.json) return this.printJson({ dryRun, steps: result.report.results, started: result.record });
    if (dryRun) return this.print(dryRunLines(result.report, result.record.cluster).join('\n'));
    this.print(`cluster ${result.record.cluster} is up: ${result.record.managerNames.length} managers, stacks redeployed: ${result.record.stacks.map((s) => s.name).join(', ') || 'none'}`);
  }
}
