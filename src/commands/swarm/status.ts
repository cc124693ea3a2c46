import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { requireCluster } from '../../swarm/cluster-record.js';
import { clusterStatus, formatStatus } from '../../swarm/status.js';

export default class SwarmStatus extends BaseCommand {
  static override summary = 'Nodes (role, availability, reachability, leader, engine, labels) and services of a swarm';
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    json: Flags.boolean({ description: 'JSON output' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmStatus);
    const store = await this.store();
    const status = await clusterStatus(store, await requireCluster(store, flags.cluster));
    if (flags.json) return this.printJson(status);
    this.print(formatStatus(status));
  }
}
