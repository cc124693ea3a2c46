import path from 'node:path';
import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { engineUrl } from '../../engine/client.js';
import { openCluster } from '../../swarm/operations.js';
import { shellEnv, type Shell } from '../../ui/shell-env.js';

export default class SwarmEnv extends BaseCommand {
  static override summary = 'Point the local docker CLI at a healthy manager of the swarm';
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    shell: Flags.string({ description: 'Shell syntax', options: ['bash', 'zsh', 'sh', 'fish', 'powershell'] }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmEnv);
    const store = await this.store();
    const { manager } = await openCluster(store, { ...(flags.cluster ? { cluster: flags.cluster } : {}) });
    const shell = (flags.shell ?? (path.basename(process.env['SHELL'] ?? '') === 'fish' ? 'fish' : 'bash')) as Shell;
    this.print(
      shellEnv(
        shell,
        { DOCKER_TLS_VERIFY: '1', DOCKER_HOST: engineUrl(manager.record), DOCKER_CERT_PATH: store.machineDir(manager.record.name), DOCKER_MACHINE_NAME: manager.record.name },
        'tmachine swarm env',
      ),
    );
  }
}
