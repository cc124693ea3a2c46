import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { requireCluster } from '../../swarm/cluster-record.js';
import { TmachineError } from '../../errors.js';
import { loadRecoveryNote, recoveryLines } from '../../swarm/ops/recover.js';
import { loadShutdownRecord } from '../../swarm/ops/shutdown.js';
import { clusterStatus, formatNodeStatus, formatStatus, nodeStatus } from '../../swarm/status.js';

export default class SwarmStatus extends BaseCommand {
  static override summary = 'Nodes (role, availability, reachability, leader, engine, labels) and services of a swarm';
  static override args = { machine: Args.string({ description: 'One node: its details and tasks (as docker node inspect and docker node ps)' }) };
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    json: Flags.boolean({ description: 'JSON output' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmStatus);
    const store = await this.store();
    const cluster = await requireCluster(store, flags.cluster);
    const shutdown = await loadShutdownRecord(store, cluster.name);
    if (shutdown) {
      throw new TmachineError(`cluster "${cluster.name}" was shut down at ${shutdown.at} (${shutdown.managers} managers and stacks ${shutdown.stacks.map((s) => s.name).join(', ') || 'none'} recorded)`, {
        hint: `bring it back with \`tmachine swarm start${flags.cluster ? ` --cluster ${flags.cluster}` : ''}\``,
      });
    }
    if (args.machine) {
      const node = await nodeStatus(store, cluster, args.machine);
      if (flags.json) return this.printJson(node);
      return this.print(formatNodeStatus(node));
    }
    const status = await clusterStatus(store, cluster);
    const recovery = await loadRecoveryNote(store, cluster.name);
    const back = new Set(status.nodes.filter((n) => n.status === 'ready').map((n) => n.machine));
    if (flags.json) return this.printJson({ ...status, ...(recovery ? { recovery: { ...recovery, next: recovery.pending.filter((n) => !back.has(n)) } } : {}) });
    this.print([formatStatus(status), ...(recovery ? ['', ...recoveryLines(recovery, back)] : [])].join('\n'));
  }
}
