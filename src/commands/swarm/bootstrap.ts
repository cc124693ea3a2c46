import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { driverNameFromArgv, oclifDriverFlags } from '../../cli/driver-flags.js';
import { engineFlags, engineOptionsFromFlags } from '../../cli/engine-flags.js';
import { loadDriverDefinition } from '../../../drivers/registry.js';
import { chooseDefaultDriver } from '../../machine/default-driver.js';
import { bootstrapCluster } from '../../swarm/bootstrap.js';
import { loadClusterFile } from '../../swarm/cluster-file.js';
import { desiredFromFlags, desiredFromSpec } from '../../swarm/desired-state.js';
import { requireCluster } from '../../swarm/cluster-record.js';
import { clusterStatus, formatStatus } from '../../swarm/status.js';
import { info, warn } from '../../ui/log.js';
import { withInterrupts } from '../../ui/interrupt.js';
import { formatTimings } from '../../ui/timings.js';

export default class SwarmBootstrap extends BaseCommand {
  static override summary = 'Create, provision and join machines into a swarm; running it again converges';
  static override examples = [
    '<%= config.bin %> swarm bootstrap --managers 3 --workers 2',
    '<%= config.bin %> swarm bootstrap -f cluster.yml',
    '<%= config.bin %> swarm bootstrap --manager m1 --worker w1 --worker w2',
  ];
  static override flags = {
    file: Flags.string({ char: 'f', description: 'Cluster file (YAML, SPEC §3)', exclusive: ['managers', 'workers', 'manager', 'worker'] }),
    driver: Flags.string({ char: 'd', description: 'Driver for machines bootstrap creates (default: docker when a local engine answers)' }),
    managers: Flags.integer({ description: 'Managers to create (odd: 1, 3, 5)' }),
    workers: Flags.integer({ description: 'Workers to create' }),
    prefix: Flags.string({ description: 'Name prefix and cluster name for created machines', default: 'tm' }),
    manager: Flags.string({ description: 'Existing machine to make a manager (repeatable)', multiple: true }),
    worker: Flags.string({ description: 'Existing machine to make a worker (repeatable)', multiple: true }),
    advertise: Flags.string({ description: 'Advertise the private or public address', options: ['private', 'public'], default: 'private' }),
    'encrypted-overlay': Flags.boolean({ description: 'Allow ESP (IP protocol 50) between members in the cloud firewalls, for overlays with --opt encrypted' }),
    'data-path-port': Flags.integer({ description: 'VXLAN port when 4789 is taken (firewalls follow)' }),
    'dry-run': Flags.boolean({ description: 'Print per host the steps that would run; change nothing' }),
    prune: Flags.boolean({ description: 'Drain and remove swarm nodes no longer listed' }),
    strict: Flags.boolean({ description: 'An even manager count is an error, not a warning' }),
    'keep-on-failure': Flags.boolean({ description: 'Keep what a failed create made' }),
    json: Flags.boolean({ description: 'Print the result as JSON' }),
    concurrency: Flags.integer({ description: 'At most this many machines worked on at once (default: all)', min: 1 }),
    timings: Flags.boolean({ description: 'Print how long each step took on each host (stderr)' }),
    ...engineFlags,
  };

  async run(): Promise<void> {
    const wantsFile = this.argv.some((a) => a === '-f' || a === '--file' || a.startsWith('--file='));
    const driverName = driverNameFromArgv(this.argv) ?? (wantsFile ? undefined : await chooseDefaultDriver());
    const driverFlags = driverName ? oclifDriverFlags(await loadDriverDefinition(driverName)) : {};
    const { flags } = await this.parse({ ...SwarmBootstrap, flags: { ...SwarmBootstrap.flags, ...SwarmBootstrap.baseFlags, ...driverFlags } });
    const store = await this.store();

    let desired;
    if (flags.file) {
      desired = desiredFromSpec(await loadClusterFile(flags.file, { driverDefinition: loadDriverDefinition }));
    } else {
      const definition = driverName ? await loadDriverDefinition(driverName) : undefined;
      const engine = engineOptionsFromFlags(flags, definition?.defaultEngineInstall ?? 'bundle');
      const { cluster, warning } = desiredFromFlags({
        ...(driverName ? { driver: driverName } : {}),
        driverOptions: flags as Record<string, unknown>,
        ...(flags.managers !== undefined ? { managers: flags.managers } : {}),
        ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
        prefix: flags.prefix,
        managerNames: flags.manager ?? [],
        workerNames: flags.worker ?? [],
        strict: flags.strict,
        swarm: {
          advertise: flags.advertise as 'private' | 'public',
          encryptedOverlay: flags['encrypted-overlay'],
          ...(flags['data-path-port'] !== undefined ? { dataPathPort: flags['data-path-port'] } : {}),
        },
        engine,
      });
      if (warning) warn(`${warning} (--strict makes this an error)`);
      desired = cluster;
    }

    const report = await withInterrupts(store, (signal) =>
      bootstrapCluster(store, desired, {
        dryRun: flags['dry-run'],
        prune: flags.prune,
        keepOnFailure: flags['keep-on-failure'],
        progress: flags.json ? 'silent' : 'auto',
        signal,
        ...(flags.concurrency ? { concurrency: flags.concurrency } : {}),
      }),
    );
    if (flags['dry-run']) {
      for (const [host, results] of report.steps) {
        for (const r of results) this.print(`${host}: ${r.outcome === 'already' ? 'already done' : 'would run'}: ${r.title}`);
      }
      return;
    }
    if (flags.timings) {
      process.stderr.write(formatTimings(report.timings.steps));
      const relayed = report.timings.relayed.length > 0 ? `; fetched from a peer: ${report.timings.relayed.join(', ')}` : '';
      process.stderr.write(`uploaded ${(report.timings.uploadedBytes / 1_048_576).toFixed(1)} MB to hosts${relayed}\n`);
    }
    const status = await clusterStatus(store, await requireCluster(store, desired.name));
    if (flags.json) return this.printJson({ ...status, unchanged: report.unchanged, created: report.created, timings: report.timings });
    if (report.unchanged) info('Every step was already done; nothing changed.');
    this.print(formatStatus(status));
  }
}
