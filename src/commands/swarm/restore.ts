import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { restoreCluster } from '../../swarm/ops/backup.js';

export default class SwarmRestore extends BaseCommand {
  static override summary = 'Bring a swarm back from `swarm backup` on a machine (--force-new-cluster): services, networks, configs and secrets';
  static override examples = ['<%= config.bin %> swarm restore prod-swarm.tgz --to new-manager-1'];
  static override args = { file: Args.string({ description: 'Backup file from `swarm backup`', required: true }) };
  static override flags = {
    to: Flags.string({ description: 'Machine (provisioned, outside any swarm) that becomes the first manager', required: true }),
    cluster: Flags.string({ char: 'c', description: 'Cluster name to record it under (default: the name in the backup)' }),
    force: Flags.boolean({ description: 'Replace the machine\u2019s own swarm state, or a cluster record of that name' }),
    json: Flags.boolean({ description: 'JSON output' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmRestore);
    const result = await restoreCluster(await this.store(), args.file, flags.to, { ...(flags.cluster ? { cluster: flags.cluster } : {}), force: flags.force });
    if (flags.json) return this.printJson(result);
    this.print(`cluster ${result.cluster} restored on ${result.machine} with ${result.services.length} service(s)${result.services.length ? `: ${result.services.join(', ')}` : ''}; grow it back with \`tmachine swarm join NAME --role manager\` and \`tmachine swarm recover\``);
  }
}
