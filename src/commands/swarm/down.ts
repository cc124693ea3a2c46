import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { removeMachine } from '../../machine/remove.js';
import { swarmDown } from '../../swarm/operations.js';
import { runTasks } from '../../ui/progress.js';

export default class SwarmDown extends BaseCommand {
  static override summary = 'Dissolve the swarm (every node leaves); --rm also removes the machines';
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    rm: Flags.boolean({ description: 'Remove the machines too' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmDown);
    const store = await this.store();
    const cluster = await swarmDown(store, flags.cluster);
    if (flags.rm) {
      const records = await Promise.all(cluster.nodes.map((n) => store.load(n.name).catch(() => undefined)));
      await runTasks(
        records.filter((r) => r !== undefined).map((r) => ({ title: `${r.name}: remove`, run: () => removeMachine(store, r, { force: true, together: cluster.nodes.map((n) => n.name) }) })),
        { concurrent: true, continueOnError: true },
      );
    }
    this.print(`cluster ${cluster.name} is down${flags.rm ? ' and its machines removed' : ''}`);
  }
}
