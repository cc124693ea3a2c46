import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { exportContext, upsertContext } from '../../cli/docker-context.js';
import { engineUrl } from '../../engine/client.js';
import { openCluster } from '../../swarm/operations.js';
import { info } from '../../ui/log.js';

export default class SwarmContext extends BaseCommand {
  static override summary = 'Create or update a docker context for a healthy manager of the swarm; --export writes one to share';
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    export: Flags.string({ description: 'Write the context to this archive instead of adding it to your docker contexts' }),
    'context-name': Flags.string({ description: 'Name of the docker context (default: the cluster name)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmContext);
    const store = await this.store();
    const opened = await openCluster(store, { ...(flags.cluster ? { cluster: flags.cluster } : {}) });
    const manager = opened.manager.record;
    const clusterName = opened.cluster.name;
    const target = {
      name: flags['context-name'] ?? clusterName,
      description: `tmachine swarm ${clusterName} (manager ${manager.name})`,
      host: engineUrl(manager),
      certDir: store.machineDir(manager.name),
    };
    if (flags.export) {
      await exportContext(target, flags.export);
      info(`Wrote docker context "${target.name}" (manager ${manager.name}) to ${flags.export}. Import: docker context import ${target.name} ${flags.export}`);
      return;
    }
    const done = await upsertContext(target);
    info(`docker context "${target.name}" ${done} (manager ${manager.name}). Use it: docker --context ${target.name} node ls`);
  }
}
