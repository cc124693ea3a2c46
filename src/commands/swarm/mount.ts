import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { clusterMount, mountOnCluster } from '../../swarm/ops/mounts.js';
import { dryRunLines } from '../../swarm/ops/plan-output.js';
import { planProgress } from '../../ui/plan-progress.js';

export default class SwarmMount extends BaseCommand {
  static override summary = 'Mount shared storage on every node (a systemd mount unit that survives reboots), and on nodes that join later';
  static override examples = ['<%= config.bin %> swarm mount nfs.example.org:/export/project /project', '<%= config.bin %> swarm mount tmpfs /scratch --type tmpfs -o size=64m'];
  static override args = {
    source: Args.string({ description: 'server:/path for NFS, or the source of --type', required: true }),
    target: Args.string({ description: 'Absolute mount point on every node', required: true }),
  };
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    type: Flags.string({ description: 'Filesystem type (default: nfs for server:/path)' }),
    options: Flags.string({ char: 'o', description: 'Mount options (comma-separated)' }),
    'dry-run': Flags.boolean({ description: 'Print the steps per host and change nothing' }),
    json: Flags.boolean({ description: 'JSON output' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmMount);
    const mount = clusterMount(args.source, args.target, { ...(flags.type ? { type: flags.type } : {}), ...(flags.options ? { options: flags.options } : {}) });
    const dryRun = flags['dry-run'];
    const progress = planProgress(flags.json || dryRun ? 'silent' : 'auto');
    let result;
    try {
      result = await mountOnCluster(await this.store(), mount, flags.cluster, { dryRun, listener: progress.listener });
    } finally {
      await progress.finished();
    }
    if (flags.json) return this.printJson({ dryRun, mount, steps: result.report.results });
    if (dryRun) return this.print(dryRunLines(result.report, result.cluster).join('\n'));
    const done = result.report.results.filter((r) => r.outcome === 'done').length;
    this.print(result.report.unchanged ? `${mount.target}: already mounted on every node` : `${mount.target}: mounted on ${done} node(s)`);
  }
}
