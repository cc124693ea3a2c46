import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { confirmOrRefuse } from '../../cli/confirm.js';
import { removeMachine } from '../../machine/remove.js';
import { swarmDown } from '../../swarm/operations.js';
import { runTasks } from '../../ui/progress.js';

export default class SwarmDown extends BaseCommand {
  static override summary = 'Dissolve the swarm (every node leaves); --rm also removes the machines';
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    rm: Flags.boolean({ description: 'Remove the machines too (asks first; -y does not)' }),
    yes: Flags.boolean({ char: 'y', description: 'With --rm: do not ask for confirmation' }),
    force: Flags.boolean({ description: 'With --rm: same as -y, as `rm -f` takes it' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmDown);
    const store = await this.store();
    // Asked before anything changes: the swarm is dissolved and every machine removed.
    if (flags.rm && !flags.yes && !flags.force) {
      const what = flags.cluster ? `cluster ${flags.cluster}` : 'the cluster';
      if (!(await confirmOrRefuse('swarm down --rm', `About to dissolve ${what} and remove all its machines.`))) return;
    }
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
