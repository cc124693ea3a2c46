import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { dryRunLines } from '../../swarm/ops/plan-output.js';
import { upgradeCluster } from '../../swarm/ops/upgrade.js';
import { planProgress } from '../../ui/plan-progress.js';

export default class SwarmUpgrade extends BaseCommand {
  static override summary = 'Rolling engine upgrade: one node at a time (drain, upgrade, wait Ready, activate), managers keeping quorum, workers in batches';
  static override examples = ['<%= config.bin %> swarm upgrade --engine-bundle ./docker-27.3.1.tgz', '<%= config.bin %> swarm upgrade --engine-version 27.3.1 --batch 2 --dry-run'];
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    'engine-bundle': Flags.string({ description: 'Bundle to install (local .tgz or URL)', exactlyOne: ['engine-bundle', 'engine-version'] }),
    'engine-version': Flags.string({ description: 'Engine version of a cached bundle', exactlyOne: ['engine-bundle', 'engine-version'] }),
    batch: Flags.integer({ description: 'Workers upgraded at a time', default: 1, min: 1 }),
    force: Flags.boolean({ description: 'Upgrade even with fewer than 3 managers or nodes that are not Ready' }),
    'dry-run': Flags.boolean({ description: 'Print the steps per host and change nothing' }),
    json: Flags.boolean({ description: 'Progress and result as JSON' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmUpgrade);
    const store = await this.store();
    const dryRun = flags['dry-run'];
    const progress = planProgress(flags.json || dryRun ? 'silent' : 'auto');
    let result;
    try {
      result = await upgradeCluster(
        store,
        flags.cluster,
        { ...(flags['engine-bundle'] ? { bundle: flags['engine-bundle'] } : {}), ...(flags['engine-version'] ? { version: flags['engine-version'] } : {}), batch: flags.batch, force: flags.force },
        { dryRun, listener: progress.listener },
      );
    } finally {
      await progress.finished();
    }
    const upgraded = result.report.results.filter((r) => r.outcome === 'done').map((r) => r.host);
    if (flags.json) return this.printJson({ dryRun, steps: result.report.results, cluster: result.cluster, bundle: { sha256: result.bundle.sha256, version: result.bundle.version }, upgraded });
    if (dryRun) return this.print(dryRunLines(result.report, result.cluster).join('\n'));
    this.print(upgraded.length ? `upgraded ${upgraded.join(', ')} to engine ${result.bundle.version ?? result.bundle.sha256.slice(0, 12)}` : `every node already runs bundle ${result.bundle.sha256.slice(0, 12)}`);
  }
}
