import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { backupCluster } from '../../swarm/ops/backup.js';
import { dryRunLines } from '../../swarm/ops/plan-output.js';
import { planProgress } from '../../ui/plan-progress.js';

export default class SwarmBackup extends BaseCommand {
  static override summary = "Consistent copy of the swarm state (a manager's /var/lib/docker/swarm, with the unlock key under autolock), taken while the other managers keep quorum";
  static override examples = ['<%= config.bin %> swarm backup -o prod-swarm.tgz'];
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    output: Flags.string({ char: 'o', description: 'Backup file to write (default: CLUSTER-swarm-TIME.tgz here); mode 0600' }),
    force: Flags.boolean({ description: 'Stop the manager even when the others cannot keep quorum (a single manager)' }),
    'dry-run': Flags.boolean({ description: 'Print the steps and change nothing' }),
    json: Flags.boolean({ description: 'Progress and result as JSON' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmBackup);
    const store = await this.store();
    const dryRun = flags['dry-run'];
    const progress = planProgress(flags.json || dryRun ? 'silent' : 'auto');
    let result;
    try {
      result = await backupCluster(store, flags.cluster, { ...(flags.output ? { output: flags.output } : {}), force: flags.force, dryRun, listener: progress.listener });
    } finally {
      await progress.finished();
    }
    if (flags.json) return this.printJson({ dryRun, steps: result.report.results, file: result.file, meta: result.meta });
    if (dryRun) return this.print(dryRunLines(result.report, result.meta.cluster).join('\n'));
    this.print(`swarm state of ${result.meta.cluster} (from ${result.meta.from}${result.meta.autolock ? ', with its unlock key' : ''}) written to ${result.file}`);
  }
}
